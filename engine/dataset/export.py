"""Export the dataset as an image folder the Hugging Face `datasets` loader reads:
`metadata.jsonl` (file_name, text, caption, concepts, class words, boxes, mask files, review
state) beside the images, masks under `masks/`. Assembled in a temp folder and renamed into
place when complete, so a cancelled export leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.project import DatasetItem, Project

if TYPE_CHECKING:
    from engine.dataset.jobs import ExportDatasetParams, ExportedDataset
    from engine.reporting import Reporter

EXPORT_STATES: tuple[str, ...] = ("auto-kept", "accepted")


def _box(placement: Mapping[str, Any], size: int) -> list[float]:
    x0, y0, x1, y1 = placement["object_box"]
    return [round(x0 / size, 6), round(y0 / size, 6), round((x1 - x0) / size, 6),
            round((y1 - y0) / size, 6)]


def _export_row(item: DatasetItem, n: int, project: Project, folder: Path) -> dict[str, Any]:
    from engine.atomic import atomic_copy
    from engine.project import concept_dir_name
    from engine.project.records import Concept

    ext = Path(item.image_file).suffix or ".png"
    file_name = f"{n:05d}{ext}"
    atomic_copy(project.abspath(item.image_file), folder / file_name)
    prov = item.provenance
    size = int(prov.get("size") or 1)
    known = prov.get("concepts", {})
    placements = {p["concept_id"]: p for p in prov.get("placements", [])}
    # Left to right, as the token caption lists them.
    order = sorted(item.masks, key=lambda cid: (placements[cid]["object_box"][0]
                                                if cid in placements else 0, cid))
    row: dict[str, Any] = {"file_name": file_name, "text": item.token_caption or item.caption,
                           "caption": item.caption, "concepts": [], "class_words": [],
                           "boxes": [], "mask_file_names": []}
    for cid in order:
        info = known.get(str(cid), {})
        token = info.get("token", f"<concept-{cid}>")
        name = concept_dir_name(Concept(id=cid, name=token, token=token, class_word=""))
        mask_name = f"masks/{n:05d}_{name}.png"
        atomic_copy(project.abspath(item.masks[cid]), folder / mask_name)
        row["concepts"].append(token)
        row["class_words"].append(info.get("class_word", ""))
        row["boxes"].append(_box(placements[cid], size) if cid in placements else [])
        row["mask_file_names"].append(mask_name)
    row.update({"review_state": item.review_state, "item_id": item.id,
                "build_index": item.build_index})
    return row


def _export_bytes(project: Project, items: Sequence[DatasetItem]) -> int:
    """What an export of `items` writes: their images and masks, plus the metadata."""
    total = 1 << 20
    for item in items:
        for rel in (item.image_file, *item.masks.values()):
            with contextlib.suppress(OSError):  # a missing file is reported when copied
                total += project.abspath(rel).stat().st_size
    return total


def export_dataset(project: Project, out_dir: str | os.PathLike[str],
                   states: Sequence[str] = EXPORT_STATES, ctx: Reporter | None = None) -> int:
    """Write the items in `states` as an imagefolder dataset at `out_dir` (which must not
    exist or be empty). Returns how many items were written."""
    from engine.atomic import (
        atomic_write_text,
        check_writable_folder,
        disk_full_error,
        ensure_free_space,
        fsync_dir,
        looks_like_disk_full,
        temp_path_for,
    )

    out = Path(out_dir).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} already exists and is not an empty folder")
    check_writable_folder(out, "The export folder")
    items = [i for i in project.dataset_items() if i.review_state in states]
    items.sort(key=lambda i: (i.build_index is None, i.build_index or 0, i.id or 0))
    if not items:
        raise InputError(f"No dataset items to export (review states {', '.join(states)})")
    out.parent.mkdir(parents=True, exist_ok=True)
    needed = _export_bytes(project, items)
    kept = f"Nothing was written to {out}"
    ensure_free_space(out, needed, kept, "export again")
    staging = temp_path_for(out)
    (staging / "masks").mkdir(parents=True)
    try:
        rows = []
        for n, item in enumerate(items):
            if ctx is not None:
                ctx.progress(n, len(items), f"item {n + 1}/{len(items)}")
            rows.append(_export_row(item, n, project, staging))
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        atomic_write_text(staging / "metadata.jsonl", lines)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
        fsync_dir(out.parent)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, Exception) and looks_like_disk_full(exc, out.parent, needed):
            raise disk_full_error(out, needed, f"{kept} (the part copied was removed)",
                                  "export again") from exc
        raise
    if ctx is not None:
        ctx.progress(len(items), len(items), "exported")
    return len(items)


def export_dataset_job(ctx: Reporter, params: ExportDatasetParams) -> ExportedDataset:
    """Job: export the kept and accepted items (all of them with include_rejected)."""
    from engine.dataset.jobs import ExportedDataset
    from engine.project import REVIEW_STATES

    states = REVIEW_STATES if params.include_rejected else EXPORT_STATES
    with Project.open(params.project) as proj:
        written = export_dataset(proj, params.out_dir, states, ctx)
    return ExportedDataset(written, str(Path(params.out_dir).absolute()))
