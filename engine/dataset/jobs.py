"""The dataset stage's jobs, declared once: build (compose, inpaint, caption, filter), export
as an image folder, and prepare the OpenVINO inpainting backend (a per-profile conversion,
no project: it serves every project's builds)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.jobs.declaration import (
    JobDeclaration,
    JobParams,
    JobResult,
    ProjectParams,
    StageParams,
    param,
)

MAX_ITEMS = 100_000


@dataclass(frozen=True, kw_only=True)
class BuildDatasetParams(StageParams):
    count: int = param(minimum=1, maximum=MAX_ITEMS, help="items #0..N-1 to have in total")
    steps: int | None = param(None, minimum=1, maximum=500,
                              help="denoising steps (default 60, 20 on a CPU)")
    guidance: float | None = param(None, minimum=0.0, maximum=30.0,
                                   help="guidance scale (default 6.0)")
    strength: float | None = param(None, minimum=0.01, maximum=1.0,
                                   help="inpainting strength (default 0.9)")
    seed: int = param(0, minimum=0, help="build seed")
    background: str | None = param(None, help="a photo to start the background from "
                                              "(default: colour noise)")
    resolution: int | None = param(None, minimum=32, maximum=4096,
                                   help="canvas side in pixels (default: the profile's)")
    backend: str = param("auto", choices=("auto", "torch", "openvino"),
                         help="who computes the inpainting on a CPU: auto takes OpenVINO when "
                              "prepare-openvino made it ready and measured it faster here")

    def check(self) -> None:
        super().check()
        from engine.errors import InputError

        if self.resolution is not None and self.resolution % 8:
            raise InputError(f"resolution must be a multiple of 8, got {self.resolution}")


@dataclass(frozen=True)
class BuiltDataset(JobResult):
    count: int
    already: int
    built: int = 0
    kept: int = 0
    rejected: int = 0

    def summary(self) -> str:
        return (f"{self.count} items: {self.built} built now ({self.kept} kept, "
                f"{self.rejected} rejected), {self.already} already there")


@dataclass(frozen=True, kw_only=True)
class ExportDatasetParams(ProjectParams):
    out_dir: str = param(positional=True, help="a new or empty folder")
    include_rejected: bool = param(False, help="also items the filter or you rejected")


@dataclass(frozen=True)
class ExportedDataset(JobResult):
    items: int
    path: str

    def summary(self) -> str:
        return f"Exported {self.items} items to {self.path}"


@dataclass(frozen=True, kw_only=True)
class PrepareOpenVinoParams(JobParams):
    profile: str | None = param(None, help="model profile (default: the settings' one)")
    device: str | None = param(None, help="must plan to the CPU: auto or cpu "
                                          "(default: the settings' one)")
    overrides: dict[str, str] | None = param(
        None, cli=False, help="a weights folder or file per role (default: the settings')")
    recalibrate: bool = param(False, help="measure OpenVINO against torch again on this "
                                          "computer")


@dataclass(frozen=True)
class OpenVinoPrepared(JobResult):
    profile: str
    folder: str
    precision: str  # OpenVINO's inference precision: bf16 or f32
    converted_now: bool
    convert_seconds: float
    unet_difference: float  # relative L2 from torch float32 on the verification input
    decoder_difference: float
    torch_item_seconds: float  # projected per dataset item, on this computer
    openvino_item_seconds: float
    used: bool  # builds take OpenVINO (backend auto)

    def summary(self) -> str:
        made = (f"converted in {self.convert_seconds:.0f} s" if self.converted_now
                else "already converted")
        verdict = "builds use OpenVINO" if self.used else "builds keep torch"
        return (f"OpenVINO inpainting for profile {self.profile} ({self.precision}): {made}, "
                f"verified (UNet {self.unet_difference:.2%}, VAE decoder "
                f"{self.decoder_difference:.2%} from torch float32); about "
                f"{self.openvino_item_seconds:.1f} s per item against torch's "
                f"{self.torch_item_seconds:.1f} s here: {verdict}")


BUILD_DATASET = JobDeclaration(
    "build-dataset", "engine.dataset.build:build_dataset_job", BuildDatasetParams,
    BuiltDataset, title=lambda p: f"Build the dataset ({p.count} pictures)", resumable=True,
    changes=("dataset",), owner_check="engine.dataset.build:build_owned_elsewhere",
    help="compose, inpaint, caption and filter the training images")
EXPORT_DATASET = JobDeclaration(
    "export-dataset", "engine.dataset.export:export_dataset_job", ExportDatasetParams,
    ExportedDataset, title="Export the dataset",
    help="write the dataset as an image folder with metadata.jsonl")
PREPARE_OPENVINO = JobDeclaration(
    "prepare-openvino", "engine.dataset.openvino_prepare:prepare_openvino_job",
    PrepareOpenVinoParams, OpenVinoPrepared,
    title=lambda p: f"Prepare OpenVINO inpainting ({p.profile or 'the profile'})",
    help="convert the inpainting model to OpenVINO once, verify it and measure it here")
JOBS = (BUILD_DATASET, EXPORT_DATASET, PREPARE_OPENVINO)
