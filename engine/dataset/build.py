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

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.errors import InputError
from engine.masks import mask_to_image, png_bytes
from engine.project import DatasetItem, Layout, Mask, Project, exclusive

if TYPE_CHECKING:
    from PIL import Image

    from engine.dataset.compose import Composition, Cutout
    from engine.dataset.inpaint import Inpainter, InpaintSettings, StepCallback
    from engine.dataset.jobs import BuildDatasetParams, BuiltDataset
    from engine.dataset.quality import ClipJudge
    from engine.jobs import JobContext
    from engine.jobs.stage_setup import StageSetup
    from engine.models.profiles import Profile
    from engine.project import Concept

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
        raise InputError("The project has no layouts yet: run `mycanvas plan` first",
                         problem="The project has no layouts yet.", command="mycanvas plan",
                         hint="plan the layouts first")
    return layouts


def cutouts_by_concept(project: Project, layouts: Iterable[Layout],
                       profile: Profile | None = None) -> dict[int, list[Mask]]:
    """Each concept the layouts use -> its cut-outs; a concept without one is an error. For a
    real `profile`, cut-outs of masks a test model made do not count (they are noise)."""
    from engine.dataset.compose import concept_cutout_masks
    from engine.models.profiles import remade_for

    needed = sorted({obj.concept_id for layout in layouts for obj in layout.objects})
    found = {concept_id: concept_cutout_masks(project, concept_id) for concept_id in needed}
    noise = []
    if profile is not None:
        for concept_id, masks in found.items():
            real = [m for m in masks if not remade_for(profile, m.test_model)]
            if masks and not real:
                noise.append(project.concept(concept_id).name)
            found[concept_id] = real
    if noise and profile is not None:
        raise InputError(f"The cut-outs of {', '.join(noise)} were made with the test models "
                         f"(noise): segment again on profile {profile.name!r} first "
                         f"(mycanvas segment --profile {profile.name})")
    lacking = [project.concept(cid).name for cid, masks in found.items() if not masks]
    if lacking:
        raise InputError(f"No cut-out yet for {', '.join(lacking)}: run `mycanvas segment` "
                         "first", problem=f"No cut-out yet for {', '.join(lacking)}.",
                         command="mycanvas segment", hint="find the objects in the photos first")
    return found


def built_by_test_models(project: Project, profile: Profile) -> list[DatasetItem]:
    """The numbered items a real `profile`'s build makes again: those test models built."""
    from engine.models.profiles import made_with_test_models, remade_for

    return [i for i in project.dataset_items() if i.build_index is not None
            and remade_for(profile, made_with_test_models(i.provenance))]


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


def _load_background(project: Project, path: str, size: int) -> tuple[Image.Image, str]:
    """The user's background photo, checked like any photo, stored in the project."""
    from engine.dataset.compose import photo_background
    from engine.intake import read_image_file

    _data, decoded = read_image_file(path)
    rel = project.put_bytes(png_bytes(decoded.rgb), "png")
    return photo_background(decoded.rgb, size), rel


def _load_judge(ctx: JobContext, setup: StageSetup) -> ClipJudge | None:
    from engine.models.profiles import role_status

    if not role_status(setup.profile, "clip", setup.overrides).present:
        ctx.log("No CLIP model on this computer for this profile: the CLIP check is skipped")
        return None
    from engine.dataset.quality import ClipJudge
    from engine.models.loaders import load_clip

    assert setup.device is not None
    device, dtype = setup.device.device, setup.device.dtype
    path = setup.role_path("clip")
    model, preprocess, _tokenizer = ctx.models.load(
        setup.model_key("clip", str(path)), lambda: load_clip(path, device, dtype))
    return ClipJudge(model, preprocess, device, test_model=setup.profile.test_models)


def _build_item(build: _Build, plan: ItemPlan, on_step: StepCallback) -> DatasetItem:
    from engine.dataset.caption import background_prompt, captions_for
    from engine.dataset.compose import compose
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
    image_file = build.project.put_bytes(png_bytes(result.image), "png")
    mask_files = {cid: build.project.put_bytes(png_bytes(mask_to_image(mask)), "png")
                  for cid, mask in composition.concept_masks.items()}
    plan_device = build.inpainter.plan
    provenance = {
        "version": PROVENANCE_VERSION, "build_seed": build.build_seed, "seed": plan.seed,
        "profile": build.profile, "device": plan_device.device, "dtype": plan_device.dtype,
        "compute": plan_device.autocast_dtype or plan_device.dtype,
        "backend": build.inpainter.backend,
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


def build_owned_elsewhere(params: BuildDatasetParams) -> str | None:
    """The refusal naming the process that builds on this project now, or None."""
    from engine.project import exclusive_refusal

    return exclusive_refusal(params.project, "build-dataset", "build")


def build_dataset_job(ctx: JobContext, params: BuildDatasetParams) -> BuiltDataset:
    """Job: make sure dataset items #0..count-1 exist, building the missing ones."""
    from engine.dataset.inpaint import DEFAULT_GUIDANCE, DEFAULT_STRENGTH, InpaintSettings
    from engine.dataset.jobs import BuiltDataset
    from engine.jobs.stage_setup import resolve_stage

    setup = resolve_stage(params)
    total_items = params.count
    seed = params.seed
    settings = InpaintSettings(
        steps=params.steps,
        guidance=DEFAULT_GUIDANCE if params.guidance is None else params.guidance,
        strength=DEFAULT_STRENGTH if params.strength is None else params.strength)
    size = setup.profile.resolution if params.resolution is None else params.resolution
    # One build per project at a time (two would race for the same item numbers).
    with Project.open(params.project) as proj, exclusive(proj.root, "build-dataset", "build",
                                                       "building the dataset"):
        # What test models built is noise to a real profile: its numbers are built again.
        noise = built_by_test_models(proj, setup.profile)
        stale = {i.build_index for i in noise}
        done = {i.build_index for i in proj.dataset_items() if i.build_index is not None} - stale
        missing = [i for i in range(total_items) if i not in done]
        summary = {"count": total_items, "already": total_items - len(missing),
                   "built": 0, "kept": 0, "rejected": 0}
        if not missing:
            ctx.log(f"The dataset already has items #0..{total_items - 1}; nothing to build")
            return BuiltDataset(**summary)
        layouts = usable_layouts(proj)
        cutouts = cutouts_by_concept(proj, layouts, setup.profile)
        bg_image, bg_file = (None, None)
        if params.background:
            bg_image, bg_file = _load_background(proj, params.background, size)
        ctx.progress(0, len(missing), "loading models")
        from engine.dataset.inpaint import load_inpainter

        inpainter = load_inpainter(ctx, setup, params.backend, size)
        judge = _load_judge(ctx, setup)
        build = _Build(
            project=proj, ctx=ctx, size=size, settings=settings, inpainter=inpainter,
            judge=judge, background=bg_image, background_file=bg_file, profile=setup.profile.name,
            build_seed=seed, layouts={int(layout.id or 0): layout for layout in layouts},
            masks={m.id: m for masks in cutouts.values() for m in masks},
            concepts={c.id: c for c in proj.concepts()}, loaded={},
        )
        if noise:  # only now, when the build can run: bad input leaves the project as it was
            proj.release_build_indices(int(i.id or 0) for i in noise)
            ctx.log(f"{len(noise)} dataset item(s) built with the test models are built again "
                    f"on profile {setup.profile.name!r} (they stay, outside the build)")
        # Progress counts denoising steps plus one unit per item for compose/filter/save.
        per_item = settings.denoising_steps(inpainter.plan.device) + 1
        total = per_item * len(missing)
        for done_items, index in enumerate(missing):
            base = done_items * per_item
            # Plain words for people: which picture of this build, not its catalogue index.
            label = f"building picture {done_items + 1} of {len(missing)}"
            ctx.progress(base, total, label)

            def on_step(step: int, steps_total: int, base: int = base, label: str = label):
                ctx.progress(base + round(step * (per_item - 1) / max(1, steps_total)), total,
                             f"{label} (painting: {step} of {steps_total} steps)")

            plan = plan_item(index, layouts, cutouts, seed)
            item = _build_item(build, plan, on_step)
            summary["built"] += 1
            summary["kept" if item.review_state == "auto-kept" else "rejected"] += 1
        ctx.progress(total, total, "done")
    return BuiltDataset(**summary)
