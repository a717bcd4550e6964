"""Each EM iteration's masks and figures, on disk in the run's folder, and read back.

    runs/<id>/masks/iter-000/     iteration 0: the initial masks
                 iter-001/     after the first E-step, ...
        <token>.png            one mask per concept (token without brackets, as the export
                               names its files): the photo's part of the model's square, so
                               the photo's aspect at the training resolution; scale it over
                               the photo to show it
        overlay.png            the photo with every mask in its concept's colour
        iteration.json         the record below

The record (also one line of runs/<id>/metrics.jsonl, at the step it was made after):
{"iteration", "step", "masks": {token: "masks/iter-001/mochi.png"}, "overlay",
"sources" (iteration 0: where each mask came from), "iou" (each concept's mask against the
previous iteration's), "concept_loss" (the diffusion loss inside each concept's mask at the
E-step's noise levels), "area" (each mask's share of the photo), "converged", "seconds"}.

A folder is written under a temp name and renamed into place: a kill never leaves half an
iteration. Importing this module is cheap (numpy and PIL inside the functions).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.atomic import TEMP_MARK, fsync_dir

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

RECORD_NAME = "iteration.json"
OVERLAY_NAME = "overlay.png"


def iteration_dir(run_dir: Path, iteration: int) -> Path:
    return Path(run_dir) / "masks" / f"iter-{iteration:03d}"


def mask_file_name(token: str) -> str:
    from engine.paths import safe_component

    return f"{safe_component(token.strip('<>'), fallback='token')}.png"


def write_iteration(run_dir: Path, iteration: int, tokens: list[str], masks: np.ndarray,
                    overlay: Image.Image, record: dict[str, Any]) -> dict[str, Any]:
    """Store one iteration's masks (already cropped to the photo) and overlay atomically;
    returns the record with the file names filled in."""
    from engine.masks import mask_png, png_bytes

    final = iteration_dir(run_dir, iteration)
    final.parent.mkdir(parents=True, exist_ok=True)
    rel = f"masks/{final.name}"
    files = {token: f"{rel}/{mask_file_name(token)}" for token in tokens}
    full = {"iteration": iteration, **record, "masks": files, "overlay": f"{rel}/{OVERLAY_NAME}"}
    temp = final.with_name(f".{final.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    temp.mkdir()
    try:
        for token, mask in zip(tokens, masks, strict=True):
            (temp / mask_file_name(token)).write_bytes(mask_png(mask))
        (temp / OVERLAY_NAME).write_bytes(png_bytes(overlay))
        (temp / RECORD_NAME).write_text(json.dumps(full, indent=1, ensure_ascii=False),
                                        encoding="utf-8")
        for entry in temp.iterdir():
            with open(entry, "rb+") as f:
                os.fsync(f.fileno())
        if final.exists():  # the same iteration again (a resumed run repeats it exactly)
            shutil.rmtree(final)
        os.replace(temp, final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return full


def read_iteration_masks(run_dir: Path, iteration: int, tokens: list[str]) -> np.ndarray | None:
    """The masks of a complete iteration folder ([tokens, h, w] as stored), or None."""
    import numpy as np

    from engine.masks import read_mask

    folder = iteration_dir(run_dir, iteration)
    if not (folder / RECORD_NAME).is_file():
        return None
    try:
        return np.stack([read_mask(str(folder / mask_file_name(t))) for t in tokens])
    except (OSError, ValueError):
        return None


def read_record(run_dir: Path, iteration: int) -> dict[str, Any] | None:
    """The record of a complete iteration folder, or None."""
    try:
        data = json.loads((iteration_dir(run_dir, iteration) / RECORD_NAME).read_text(
            encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class IterationRecord:
    """One EM iteration as the Extract page shows it (see the module doc)."""

    iteration: int
    step: int
    masks: dict[str, Path]  # token -> mask PNG
    overlay: Path
    iou: dict[str, float]
    concept_loss: dict[str, float]
    area: dict[str, float]
    converged: bool
    sources: dict[str, str]


def read_iterations(run_dir: str | os.PathLike[str]) -> list[IterationRecord]:
    """Every complete iteration of a run, in order (runs/<id>, e.g. RunPaths.root)."""
    root = Path(run_dir)
    out = []
    for folder in sorted((root / "masks").glob("iter-[0-9][0-9][0-9]")):
        try:
            data = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not complete
        out.append(IterationRecord(
            iteration=int(data["iteration"]), step=int(data.get("step", 0)),
            masks={t: root / f for t, f in data.get("masks", {}).items()},
            overlay=root / data.get("overlay", ""), iou=dict(data.get("iou") or {}),
            concept_loss=dict(data.get("concept_loss") or {}),
            area=dict(data.get("area") or {}), converged=bool(data.get("converged")),
            sources=dict(data.get("sources") or {})))
    return out
