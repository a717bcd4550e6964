"""The personal mini-MyCanvas dataset: compose → inpaint → caption → filter, one resumable job.

A build fills dataset items #0..N-1. Item #i is planned deterministically from the project's
layouts and cut-outs (layout i mod L; each concept's cut-outs taken in turn; a seed derived
from the build seed and i), so a rerun after a cancel, a crash or a killed worker builds only
the missing indices and never duplicates one: the catalogue holds at most one row per index
(a unique column), and a row is written only after its image and masks are stored
(content-addressed, atomic), in one transaction. A cancelled item is discarded.

Export writes an image folder the Hugging Face `datasets` "imagefolder" loader reads:

    OUT/metadata.jsonl        file_name, text (token caption), caption, concepts, class_words,
                              boxes ([x, y, w, h] in 0..1 per concept), mask_file_names, ...
    OUT/00000.png ...
    OUT/masks/00000_<token>.png

The folder is assembled under a temp name and renamed when complete.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cli import EXIT_OK, arguments, command, run_job_in_cli
from engine.errors import InputError
from engine.project import DatasetItem, Layout, Mask, Project

if TYPE_CHECKING:
    from PIL import Image

    from engine.dataset.compose import Composition, Cutout
    from engine.dataset.inpaint import Inpainter, InpaintSettings, StepCallback
    from engine.dataset.quality import ClipJudge
    from engine.jobs import JobContext
    from engine.models.profiles import Profile
    from engine.project import Concept

MAX_ITEMS = 100_000
EXPORT_STATES: tuple[str, ...] = ("auto-kept", "accepted")
PROVENANCE_VERSION = 1


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class ItemPlan:
    """What item #index is made of: a layout, a cut-out per concept and a seed."""

    index: int
    layout_id: int
    seed: int
    cutouts: dict[int, int]  # concept id -> mask id (the mask's cut-out is pasted)


def item_seed(build_seed: int, index: int) -> int:
    """A seed per item that does not depend on the order items are built in."""
    digest = hashlib.sha256(f"mycanvas-item:{build_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def plan_item(index: int, layouts: Sequence[Layout], cutouts: Mapping[int, Sequence[Mask]],
              build_seed: int) -> ItemPlan:
    """Layouts in turn; each concept's cut-outs in turn, offset per object so the concepts of
    one item do not all use their first photo together."""
    layout = layouts[index % len(layouts)]
    round_ = index // len(layouts)
    chosen: dict[int, int] = {}
    for position, obj in enumerate(layout.objects):
        options = cutouts[obj.concept_id]
        chosen.setdefault(obj.concept_id, options[(round_ + position) % len(options)].id)
    assert layout.id is not None
    return ItemPlan(index, layout.id, item_seed(build_seed, index), chosen)


def usable_layouts(project: Project) -> list[Layout]:
    layouts = [layout for layout in project.layouts() if layout.objects]
    if not layouts:
        raise InputError("The project has no layouts yet: run `mycanvas plan` first")
    return layouts


def cutouts_by_concept(project: Project, layouts: Iterable[Layout]) -> dict[int, list[Mask]]:
    """Each concept the layouts use -> its cut-outs; a concept without one is an error."""
    from engine.dataset.compose import concept_cutout_masks

    needed = sorted({obj.concept_id for layout in layouts for obj in layout.objects})
    found = {concept_id: concept_cutout_masks(project, concept_id) for concept_id in needed}
    lacking = [project.concept(cid).name for cid, masks in found.items() if not masks]
    if lacking:
        raise InputError(f"No cut-out yet for {', '.join(lacking)}: run `mycanvas segment` "
                         "first")
    return found


# --------------------------------------------------------------------------- building


@dataclass
class _Build:
    """Everything the items of one build share."""

    project: Project
    ctx: JobContext
    size: int
    settings: InpaintSettings
    inpainter: Inpainter
    judge: ClipJudge | None
    background: Image.Image | None
    background_file: str | None
    profile: str
    build_seed: int
    layouts: dict[int, Layout]
    masks: dict[int, Mask]
    concepts: dict[int, Concept]
    loaded: dict[int, Cutout]

    def cutout(self, mask_id: int) -> Cutout:
        from engine.dataset.compose import load_cutout

        if mask_id not in self.loaded:
            self.loaded[mask_id] = load_cutout(self.project, self.masks[mask_id])
        return self.loaded[mask_id]

    def add_references(self, concept_ids: Iterable[int]) -> None:
        """Every cut-out of each concept becomes a CLIP reference (once per build)."""
        if self.judge is None:
            return
        for concept_id in concept_ids:
            peers = [m.id for m in self.masks.values() if m.concept_id == concept_id]
            self.judge.add_references(concept_id, [self.cutout(i).image for i in peers])


def _png(image: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _load_background(project: Project, path: str, size: int) -> tuple[Image.Image, str]:
    """The user's background photo, checked like any photo, stored in the project."""
    from engine.dataset.compose import photo_background
    from engine.intake.photos import read_image_file

    _data, decoded = read_image_file(path)
    rel = project.put_bytes(_png(decoded.rgb), "png")
    return photo_background(decoded.rgb, size), rel


def _load_judge(ctx: JobContext, profile: Profile, overrides: dict[str, str] | None,
                device: str, dtype: str) -> ClipJudge | None:
    from engine.models.profiles import resolve_role, role_status

    if not role_status(profile, "clip", overrides).present:
        ctx.log("No CLIP model on this computer for this profile: the CLIP check is skipped")
        return None
    from engine.dataset.quality import ClipJudge
    from engine.models.loaders import load_clip

    path = resolve_role(profile, "clip", overrides)
    key = ("clip", profile.name, str(path), device, dtype)
    if key not in ctx.cache:
        ctx.cache[key] = load_clip(path, device, dtype)
    model, preprocess, _tokenizer = ctx.cache[key]
    return ClipJudge(model, preprocess, device)


def _build_item(build: _Build, plan: ItemPlan, on_step: StepCallback) -> DatasetItem:
    from engine.dataset.caption import background_prompt, captions_for
    from engine.dataset.compose import compose, mask_to_image
    from engine.dataset.quality import assess

    layout = build.layouts[plan.layout_id]
    cutouts = {cid: build.cutout(mask_id) for cid, mask_id in plan.cutouts.items()}
    build.add_references(cutouts)
    composition: Composition = compose(layout, cutouts, build.size, plan.seed, build.background)
    prompt = background_prompt(layout)
    result = build.inpainter.paint(composition, prompt, build.settings, plan.seed, on_step)
    captions = captions_for(layout, build.concepts)
    tokens = {cid: build.concepts[cid].token for cid in composition.concept_masks}
    _grow, blur = build.settings.seam_pixels(build.size)
    report = assess(composition, result.image, tokens, judge=build.judge,
                    seam_width=max(2, 2 * blur))
    image_file = build.project.put_bytes(_png(result.image), "png")
    mask_files = {cid: build.project.put_bytes(_png(mask_to_image(mask)), "png")
                  for cid, mask in composition.concept_masks.items()}
    plan_device = build.inpainter.plan
    provenance = {
        "version": PROVENANCE_VERSION, "build_seed": build.build_seed, "seed": plan.seed,
        "profile": build.profile, "device": plan_device.device, "dtype": plan_device.dtype,
        "size": build.size, "prompt": prompt,
        "settings": build.settings.to_dict(plan_device.device),
        "background": build.background_file or "noise",
        "concepts": {str(cid): {"token": c.token, "class_word": c.class_word, "name": c.name}
                     for cid, c in build.concepts.items() if cid in composition.concept_masks},
        "placements": [p.to_dict() for p in composition.placements],
    }
    item = DatasetItem(
        image_file=image_file, caption=captions.plain, token_caption=captions.token,
        layout_id=plan.layout_id, masks=mask_files, scores=report.scores,
        review_state=report.review_state, reasons=report.reasons_text,
        build_index=plan.index, provenance=provenance,
    )
    stored = build.project.add_dataset_item(item)
    build.ctx.preview(result.image, captions.token)
    verdict = "kept" if report.kept else f"rejected: {report.reasons_text}"
    build.ctx.log(f"item #{plan.index}: {captions.token} ({verdict})")
    return stored


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ITEMS:
        raise InputError(f"--count must be a whole number from 1 to {MAX_ITEMS}, got {value!r}")
    return value


def build_dataset_job(
    ctx: JobContext, project: str, count: int, profile: str | None = None,
    device: str | None = None, steps: int | None = None, guidance: float | None = None,
    strength: float | None = None, seed: int = 0, background: str | None = None,
    resolution: int | None = None, overrides: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Job: make sure dataset items #0..count-1 exist, building the missing ones."""
    from engine.dataset.inpaint import DEFAULT_GUIDANCE, DEFAULT_STRENGTH, InpaintSettings
    from engine.models.profiles import get_profile
    from engine.settings import load_settings

    total_items = _count(count)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"--seed must be a whole number >= 0, got {seed!r}")
    user = load_settings()
    prof = get_profile(profile or user.profile or None)
    overrides = user.role_overrides if overrides is None else overrides
    settings = InpaintSettings(
        steps=steps, guidance=DEFAULT_GUIDANCE if guidance is None else guidance,
        strength=DEFAULT_STRENGTH if strength is None else strength)
    size = prof.resolution if resolution is None else resolution
    if isinstance(size, bool) or not isinstance(size, int) or size < 32 or size % 8:
        raise InputError(f"--resolution must be a multiple of 8 of at least 32, got {size!r}")
    with Project.open(project) as proj:
        done = {i.build_index for i in proj.dataset_items() if i.build_index is not None}
        missing = [i for i in range(total_items) if i not in done]
        summary: dict[str, Any] = {"count": total_items, "already": total_items - len(missing),
                                   "built": 0, "kept": 0, "rejected": 0}
        if not missing:
            ctx.log(f"The dataset already has items #0..{total_items - 1}; nothing to build")
            return summary
        layouts = usable_layouts(proj)
        cutouts = cutouts_by_concept(proj, layouts)
        bg_image, bg_file = (None, None)
        if background:
            bg_image, bg_file = _load_background(proj, background, size)
        ctx.progress(0, len(missing), "loading models")
        from engine.dataset.inpaint import load_inpainter

        inpainter = load_inpainter(ctx.cache, prof.name, overrides, device or user.device,
                                   ctx.log)
        judge = _load_judge(ctx, prof, overrides, inpainter.plan.device, inpainter.plan.dtype)
        build = _Build(
            project=proj, ctx=ctx, size=size, settings=settings, inpainter=inpainter,
            judge=judge, background=bg_image, background_file=bg_file, profile=prof.name,
            build_seed=seed, layouts={layout.id: layout for layout in layouts},
            masks={m.id: m for masks in cutouts.values() for m in masks},
            concepts={c.id: c for c in proj.concepts()}, loaded={},
        )
        # Progress counts denoising steps plus one unit per item for compose/filter/save.
        per_item = settings.denoising_steps(inpainter.plan.device) + 1
        total = per_item * len(missing)
        for done_items, index in enumerate(missing):
            base = done_items * per_item
            label = f"item {done_items + 1}/{len(missing)} (#{index})"
            ctx.progress(base, total, label)

            def on_step(step: int, steps_total: int, base: int = base, label: str = label):
                ctx.progress(base + round(step * (per_item - 1) / max(1, steps_total)), total,
                             f"{label}, step {step}/{steps_total}")

            plan = plan_item(index, layouts, cutouts, seed)
            item = _build_item(build, plan, on_step)
            summary["built"] += 1
            summary["kept" if item.review_state == "auto-kept" else "rejected"] += 1
        ctx.progress(total, total, "done")
    return summary


# --------------------------------------------------------------------------- export


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


def export_dataset(project: Project, out_dir: str | os.PathLike[str],
                   states: Sequence[str] = EXPORT_STATES, ctx: JobContext | None = None) -> int:
    """Write the items in `states` as an imagefolder dataset at `out_dir` (which must not
    exist or be empty). Returns how many items were written."""
    from engine.atomic import atomic_write_text, fsync_dir, temp_path_for

    out = Path(out_dir).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} already exists and is not an empty folder")
    items = [i for i in project.dataset_items() if i.review_state in states]
    items.sort(key=lambda i: (i.build_index is None, i.build_index or 0, i.id or 0))
    if not items:
        raise InputError(f"No dataset items to export (review states {', '.join(states)})")
    out.parent.mkdir(parents=True, exist_ok=True)
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
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if ctx is not None:
        ctx.progress(len(items), len(items), "exported")
    return len(items)


def export_dataset_job(ctx: JobContext, project: str, out_dir: str,
                       include_rejected: bool = False) -> dict[str, Any]:
    """Job: export the kept and accepted items (all of them with include_rejected)."""
    from engine.project import REVIEW_STATES

    states = REVIEW_STATES if include_rejected else EXPORT_STATES
    with Project.open(project) as proj:
        written = export_dataset(proj, out_dir, states, ctx)
    return {"items": written, "path": str(Path(out_dir).absolute())}


# --------------------------------------------------------------------------- CLI


@command("build-dataset", "compose, inpaint, caption and filter the training images",
         stage=True)
@arguments(lambda p: (
    p.add_argument("project", type=Path),
    p.add_argument("--count", type=int, required=True, help="items #0..N-1 to have in total"),
    p.add_argument("--steps", type=int, help="denoising steps (default 60, 20 on a CPU)"),
    p.add_argument("--guidance", type=float, help="guidance scale (default 6.0)"),
    p.add_argument("--strength", type=float, help="inpainting strength (default 0.9)"),
    p.add_argument("--seed", type=int, default=0, help="build seed (default 0)"),
    p.add_argument("--background", type=Path, help="a photo to start the background from "
                   "(default: colour noise)"),
    p.add_argument("--resolution", type=int, help="canvas side in pixels (default: profile's)"),
))
def cmd_build_dataset(args: argparse.Namespace) -> int:
    params = {"project": str(args.project), "count": args.count, "profile": args.profile,
              "device": args.device, "steps": args.steps, "guidance": args.guidance,
              "strength": args.strength, "seed": args.seed,
              "background": str(args.background) if args.background else None,
              "resolution": args.resolution}
    result = run_job_in_cli("build-dataset", params, args)
    print(f"{result['count']} items: {result['built']} built now "
          f"({result['kept']} kept, {result['rejected']} rejected), "
          f"{result['already']} already there")
    return EXIT_OK


@command("export-dataset", "write the dataset as an image folder with metadata.jsonl")
@arguments(lambda p: (
    p.add_argument("project", type=Path),
    p.add_argument("out_dir", type=Path),
    p.add_argument("--include-rejected", action="store_true",
                   help="also items the filter or you rejected"),
))
def cmd_export_dataset(args: argparse.Namespace) -> int:
    params = {"project": str(args.project), "out_dir": str(args.out_dir),
              "include_rejected": args.include_rejected}
    result = run_job_in_cli("export-dataset", params, args)
    print(f"Exported {result['items']} items to {result['path']}")
    return EXIT_OK

