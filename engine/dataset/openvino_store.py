"""Where the OpenVINO conversions of the dataset's inpainting model live, what they record,
and the choice between OpenVINO and torch for a build.

    <data dir>/openvino/<profile>/<source id>/
        unet.xml/.bin, vae_encoder.xml/.bin, vae_decoder.xml/.bin   the converted models
        configs.json       the torch models' configs (what the pipeline reads)
        state.json         conversion figures; verification per precision; calibrations

The source id hashes the inpainting model's UNet and VAE files (path, size, time), so new
weights get a new conversion. A conversion is made in a temp folder and renamed into place
when it is complete and verified; state.json is replaced atomically.

A build uses OpenVINO (backend "auto") only when the conversion is verified at the plan's
precision and the calibration on this computer measured it faster than torch; every reason
not to is one log line.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.atomic import atomic_write_text
from engine.errors import InputError, first_line
from engine.paths import openvino_dir, safe_component

if TYPE_CHECKING:
    from engine.device import DevicePlan
    from engine.jobs.stage_setup import StageSetup

FORMAT_VERSION = 1
UNET, VAE_ENCODER, VAE_DECODER = "unet", "vae_encoder", "vae_decoder"
PARTS = (UNET, VAE_ENCODER, VAE_DECODER)  # each <part>.xml + <part>.bin in a conversion
BACKENDS = ("auto", "torch", "openvino")
INSTALL_HINT = "pip install 'mycanvas-studio[openvino]'"
# Faster means by more than this share: within the noise of a calibration, torch stays.
MARGIN = 0.05


def import_openvino() -> Any:
    """`import openvino`, without its usage telemetry: on import, OpenVINO's converter sends
    events to Google Analytics from a background thread unless a consent file in the user's
    home says no. With `openvino_telemetry` unimportable it falls back to its own no-op stub:
    nothing leaves this computer, and no thread is left running."""
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino

    return openvino


def openvino_missing() -> str | None:
    """Why OpenVINO cannot be imported here, or None when it can."""
    try:
        import_openvino()
    except ModuleNotFoundError:
        return f"OpenVINO is not installed ({INSTALL_HINT})"
    except ImportError as exc:  # installed but broken (a missing library, a bad wheel)
        return f"OpenVINO could not be loaded ({first_line(exc)}; {INSTALL_HINT} again)"
    return None


def openvino_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("openvino")
    except metadata.PackageNotFoundError:
        return "unknown"


def profile_folder(profile: str) -> Path:
    return openvino_dir() / safe_component(profile, fallback="profile")


def source_id(model_path: Path) -> str:
    """A hash of the files the conversion is made from: the UNet's and the VAE's."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION}|{model_path.resolve()}".encode())
    for sub in ("unet", "vae"):
        folder = model_path / sub
        files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        for path in files:
            stat = path.stat()
            digest.update(f"|{path.relative_to(model_path)}:{stat.st_size}:"
                          f"{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def conversion_folder(profile: str, model_path: Path) -> Path:
    return profile_folder(profile) / source_id(model_path)


def read_state(folder: Path) -> dict[str, Any] | None:
    """The conversion's state, or None when there is no complete conversion at `folder`."""
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        return None
    if not all((folder / f"{part}{ext}").is_file() for part in PARTS for ext in (".xml",
                                                                                 ".bin")):
        return None  # files removed by hand: convert again
    return state


def write_state(folder: Path, state: dict[str, Any]) -> None:
    atomic_write_text(folder / "state.json", json.dumps(state, indent=2, sort_keys=True) + "\n")


def plan_compute(plan: DevicePlan) -> str:
    """The dtype the plan computes in on the CPU: what OpenVINO must match."""
    return plan.autocast_dtype or plan.dtype


def machine_key(plan: DevicePlan) -> str:
    """What a calibration is valid for: this processor, thread count, libraries, precision."""
    import torch

    try:
        name = str(torch.cpu.get_capabilities().get("cpu_name") or "")
    except (AttributeError, RuntimeError):
        name = ""
    return "|".join([name or platform.processor() or "cpu", platform.machine(),
                     f"threads={torch.get_num_threads()}", f"torch={torch.__version__}",
                     f"openvino={openvino_version()}", plan_compute(plan)])


def measured_faster(calibration: dict[str, Any]) -> bool:
    """OpenVINO's projected seconds per item beat torch's by more than the margin."""
    ov_s, torch_s = calibration["openvino_item_seconds"], calibration["torch_item_seconds"]
    return bool(ov_s < torch_s * (1 - MARGIN))


@dataclass(frozen=True)
class BackendChoice:
    backend: str  # "torch" or "openvino"
    folder: Path | None = None  # the conversion, for openvino
    precision: str = "f32"  # OpenVINO's inference precision, for openvino
    note: str = ""  # the one log line that says why


def choose_backend(setup: StageSetup, requested: str, size: int) -> BackendChoice:
    """torch or OpenVINO for the dataset's inpainting. "openvino" insists (an InputError says
    what is missing); "auto" takes OpenVINO only when it is ready and measured faster here."""
    from engine.dataset.openvino_models import SIDE_MULTIPLE, openvino_precision

    plan = setup.device
    assert plan is not None, "inpainting runs on a device"
    insist = requested == "openvino"
    if requested == "torch" or (plan.device != "cpu" and not insist):
        return BackendChoice("torch")  # asked for, or a GPU: nothing to say

    def torch_because(why: str, command: bool = False) -> BackendChoice:
        if command:
            why += (f"; `mycanvas prepare-openvino --profile {setup.profile.name}` "
                    "makes it ready")
        if insist:
            raise InputError(f"--backend openvino: {why}")
        return BackendChoice("torch", note=f"Inpainting on torch: {why}")

    if plan.device != "cpu":
        return torch_because(f"OpenVINO serves the CPU only; this build runs on {plan.device}")
    missing = openvino_missing()
    if missing:
        return torch_because(missing)
    if size % SIDE_MULTIPLE:
        return torch_because(f"OpenVINO needs a canvas side that is a multiple of "
                             f"{SIDE_MULTIPLE} px, this one is {size}")
    folder = conversion_folder(setup.profile.name, setup.role_path("inpaint"))
    state = read_state(folder)
    precision = openvino_precision(plan_compute(plan))
    if state is None:
        return torch_because("this profile's inpainting model is not converted for OpenVINO "
                             "yet", command=True)
    verified = state.get("verified", {}).get(precision)
    if not verified:
        return torch_because(f"the OpenVINO conversion is not verified in {precision} yet",
                             command=True)
    if not verified.get("passed"):
        return torch_because(f"the OpenVINO conversion did not match torch in {precision} "
                             f"({verified.get('reason', 'see prepare-openvino')})")
    if insist:
        return BackendChoice("openvino", folder, precision,
                             f"Inpainting on OpenVINO ({precision}), as asked")
    calibration = state.get("calibrations", {}).get(machine_key(plan))
    if calibration is None:
        return torch_because("OpenVINO has not been measured against torch on this computer "
                             "at this precision", command=True)
    ov_s, torch_s = calibration["openvino_item_seconds"], calibration["torch_item_seconds"]
    if not measured_faster(calibration):
        return torch_because(f"OpenVINO measured no faster here ({ov_s:.1f} s vs torch "
                             f"{torch_s:.1f} s per item)")
    return BackendChoice("openvino", folder, precision,
                         f"Inpainting on OpenVINO ({precision}): measured {torch_s / ov_s:.2f}x "
                         f"faster than torch here ({ov_s:.1f} s vs {torch_s:.1f} s per item)")


def remove_other_conversions(profile: str, keep: Path,
                             remove: Callable[[Path], None]) -> list[Path]:
    """Older conversions of `profile` (other weights): stale, so removed."""
    root = profile_folder(profile)
    gone = []
    for folder in root.iterdir() if root.is_dir() else []:
        if folder.is_dir() and folder != keep and not folder.name.startswith("."):
            remove(folder)
            gone.append(folder)
    return gone


def openvino_status() -> str:
    """One line for `doctor`: OpenVINO's version and which profiles are converted, or why it
    cannot be used here."""
    missing = openvino_missing()
    if missing:
        return f"{missing}; the dataset's inpainting runs on torch"
    root = openvino_dir()
    ready = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        states = [read_state(f) for f in folder.iterdir() if f.is_dir()]
        verified = sorted({p for s in states if s for p, v in s.get("verified", {}).items()
                           if isinstance(v, dict) and v.get("passed")})
        if verified:
            ready.append(f"{folder.name} (verified {'/'.join(verified)})")
    where = (f"converted: {', '.join(ready)}" if ready else
             "nothing converted yet (`mycanvas prepare-openvino --profile NAME`)")
    return f"OpenVINO {openvino_version()} for the dataset's inpainting on CPU; {where}"
