"""The dataset stage's jobs, declared once: build (compose, inpaint, caption, filter) and
export as an image folder."""

from __future__ import annotations

from dataclasses import dataclass

from engine.jobs.declaration import (
    JobDeclaration,
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


BUILD_DATASET = JobDeclaration(
    "build-dataset", "engine.dataset.build:build_dataset_job", BuildDatasetParams,
    BuiltDataset, title=lambda p: f"Build the dataset ({p.count} pictures)", resumable=True,
    changes=("dataset",), help="compose, inpaint, caption and filter the training images")
EXPORT_DATASET = JobDeclaration(
    "export-dataset", "engine.dataset.export:export_dataset_job", ExportDatasetParams,
    ExportedDataset, title="Export the dataset",
    help="write the dataset as an image folder with metadata.jsonl")
JOBS = (BUILD_DATASET, EXPORT_DATASET)
