"""Segmentation jobs: masks and cut-outs of a project's photos, stored and recorded.

Job "segment" runs the automatic foreground on every photo without a mask; job
"segment-prompts" makes masks from what the user pointed at in one photo (refinement, or one
mask per concept when a photo shows several). Both keep the loaded segmenter in the worker's
warm cache, so the next job on the same photo reuses its embedding.

A new mask never overwrites an old one: the catalogue keeps each, and the latest mask of a
(photo, concept) pair is the current one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import InputError
from engine.segment.sam import (
    Prompt,
    Segmenter,
    SegmentResult,
    load_segmenter_for,
    segment_concepts,
    segment_image,
)

if TYPE_CHECKING:
    from engine.intake import DecodedImage
    from engine.jobs import JobContext
    from engine.project import Mask, Photo, Project
    from engine.segment.jobs import (
        PaintedMask,
        PaintMaskParams,
        SegmentedPhotos,
        SegmentParams,
        SegmentPromptsParams,
    )


def save_result(project: Project, photo: Photo, concept_id: int, result: SegmentResult,
                image: DecodedImage, *, profile: str = "", test_model: bool = False) -> Mask:
    """Store the mask (L PNG) and cut-out (RGBA PNG) and record them, with what made them
    (`profile`, whether its segmenter was a `test_model`) and the plausibility flag; all or
    nothing."""
    from engine.masks import mask_png, png_bytes
    from engine.segment.cleanup import make_cutout

    if result.empty:
        raise InputError(f"{photo.original_name or photo.file}: no object found; draw a box "
                         "around it or click on it")
    cutout = png_bytes(make_cutout(image.rgb, result.mask, image.alpha))
    # A painted mask is what the user drew: nothing to doubt.
    flag = "" if result.method == "painted" else implausible(float(result.mask.mean()))
    written: list[str] = []
    try:
        mask_rel, created = project.put_bytes_tracked(mask_png(result.mask), "png")
        written += [mask_rel] if created else []
        cut_rel, created = project.put_bytes_tracked(cutout, "png")
        written += [cut_rel] if created else []
        return project.add_mask(photo.id, concept_id, mask_rel, result.method,
                                cutout_file=cut_rel, quality=result.score, profile=profile,
                                test_model=test_model, flag=flag)
    except BaseException:
        for rel in written:  # no orphan files when the catalogue write fails
            project.abspath(rel).unlink(missing_ok=True)
        raise


def _concept_id(project: Project, concept: int | str) -> int:
    if isinstance(concept, int) and not isinstance(concept, bool):
        return project.concept(concept).id
    found = project.concept_by_name(str(concept))
    if found is None:
        names = ", ".join(c.name for c in project.concepts()) or "none yet"
        raise InputError(f"No concept named {concept!r} (concepts: {names})")
    return found.id


def _announce(ctx: JobContext, segmenter: Segmenter) -> None:
    level = "warning" if segmenter.fallback or segmenter.test_model else "info"
    ctx.log(f"Segmenter: {segmenter.label}", level)
    if segmenter.detail:
        ctx.log(segmenter.detail)


def segment_job(ctx: JobContext, params: SegmentParams) -> SegmentedPhotos:
    """Job "segment": automatic foreground of every photo (of one concept, or all) that has
    no mask yet (or every photo, with redo)."""
    from engine.intake import load_photo
    from engine.jobs.stage_setup import resolve_stage
    from engine.models.profiles import remade_for
    from engine.project import Project
    from engine.segment.jobs import SegmentedPhotos

    setup = resolve_stage(params)
    profile = setup.profile.name
    with Project.open(params.project) as proj:
        concept_ids = ([_concept_id(proj, params.concept)] if params.concept is not None
                       else [c.id for c in proj.concepts()])
        todo = []
        skipped = remade = 0
        for cid in concept_ids:
            done = proj.current_masks(cid)
            for photo in proj.photos(cid):
                # A test model's mask is noise: a real profile makes it again.
                noise = photo.id in done and remade_for(setup.profile, done[photo.id].test_model)
                remade += noise
                if params.redo or photo.id not in done or noise:
                    todo.append((cid, photo))
                else:
                    skipped += 1
        if not todo and not skipped:
            which = (f"Concept {proj.concept(concept_ids[0]).name!r} has" if params.concept
                     is not None else "The project has")
            raise InputError(f"{which} no photos yet: add some first (mycanvas add-concept "
                             "PROJECT NAME --class WORD PHOTOS...)")
        if not todo:  # loading SAM would cost seconds for nothing
            ctx.log("Every photo already has a mask (redo to make new ones)")
            return SegmentedPhotos(None, False, False, skipped=skipped)
        if remade:
            ctx.log(f"{remade} mask(s) made with the test models are made again on profile "
                    f"{profile!r}")
        segmenter = load_segmenter_for(setup, params.method, ctx.models)
        _announce(ctx, segmenter)
        made: list[dict[str, Any]] = []
        failed: list[dict[str, str]] = []
        flagged: list[dict[str, str]] = []
        names = {c.id: c.name for c in proj.concepts()}
        for step, (cid, photo) in enumerate(todo):
            label = photo_label(names.get(cid, str(cid)), photo.original_name)
            ctx.progress(step, len(todo), f"segmenting {label}")
            try:
                image = load_photo(proj, photo)
                result = segment_image(segmenter, image, photo.sha256)
                mask = save_result(proj, photo, cid, result, image, profile=profile,
                                   test_model=segmenter.test_model)
            except InputError as exc:
                failed.append({"photo": label, "reason": str(exc)})
                ctx.log(f"{names.get(cid, cid)}: {exc}", "warning")
                continue
            area = float(result.mask.mean())
            made.append({"photo_id": photo.id, "concept_id": cid, "mask_id": mask.id,
                         "method": mask.method, "area": area})
            _flag_coverage(ctx, label, area, flagged)
            ctx.preview(_preview(image, result), label)
        ctx.progress(len(todo), len(todo), "segmented")
        return SegmentedPhotos(segmenter.label, segmenter.fallback, segmenter.test_model,
                               made, skipped, failed, flagged)


# A mask this full, or this small, is the segmenter's failure far more often than a photo of
# that shape (the reference photos' objects cover 9-80 %): the user is asked to look.
NEARLY_ALL, NEARLY_NONE = 0.92, 0.01


def implausible(area: float) -> str:
    """Why a mask covering `area` (0..1) of its photo is likely wrong, or '' (stored with the
    mask as its flag)."""
    if area >= NEARLY_ALL:
        return (f"the mask covers {area:.0%} of the photo: the segmenter probably did not find "
                "the object")
    if area <= NEARLY_NONE:
        return f"the mask covers only {area:.1%} of the photo: probably a fragment"
    return ""


def photo_label(concept: str, file_name: str) -> str:
    """How a warning names a photo: photos of different concepts often share a file name
    (03.jpg), so the concept comes first."""
    return f"{concept}'s {file_name}"


def coverage_warning(name: str, area: float) -> str:
    """Why a mask covering `area` of photo `name` needs a look, or ''."""
    reason = implausible(area)
    return f"{name}: {reason}; check it, or click on the object or draw a box around it" \
        if reason else ""


def _flag_coverage(ctx: JobContext, name: str, area: float,
                   flagged: list[dict[str, str]]) -> None:
    warning = coverage_warning(name, area)
    if warning:
        ctx.log(warning, "warning")
        flagged.append({"photo": name, "reason": warning})


PREVIEW_SIDE = 1024  # a preview is looked at, not measured: it never needs the full photo


def _preview(image: DecodedImage, result: SegmentResult) -> Any:
    """The photo with everything outside the mask dimmed, at most PREVIEW_SIDE pixels long:
    what the user checks."""
    from PIL import Image

    from engine.segment.cleanup import _cv2

    rgb, mask = image.rgb, result.mask
    scale = min(1.0, PREVIEW_SIDE / max(rgb.size))
    if scale < 1.0:
        size = (max(1, round(rgb.size[0] * scale)), max(1, round(rgb.size[1] * scale)))
        rgb = rgb.resize(size, Image.Resampling.BOX)
        small = _cv2().resize(np.where(mask, np.uint8(255), np.uint8(0)), size,
                              interpolation=_cv2().INTER_AREA)
        mask = small >= 128
    pixels = np.asarray(rgb).astype(np.float32)
    shown = np.where(mask[..., None], pixels, pixels * 0.3 + 255 * 0.2)
    return Image.fromarray(shown.astype(np.uint8), "RGB")


def segment_prompts_job(ctx: JobContext, params: SegmentPromptsParams) -> SegmentedPhotos:
    """Job "segment-prompts": masks for the concepts the user pointed at in one photo.

    One prompt refines that concept's mask; several give each concept its own mask from the
    same photo. The photo's embedding is computed once (and stays cached in a warm worker for
    the next click).
    """
    from engine.intake import load_photo
    from engine.jobs.stage_setup import resolve_stage
    from engine.project import Project
    from engine.segment.jobs import SegmentedPhotos

    with Project.open(params.project) as proj:
        photo = proj.photo(params.photo_id)
        by_concept: dict[int, Prompt] = {}
        for raw in params.prompts:
            cid = _concept_id(proj, raw["concept"])
            if cid in by_concept:
                raise InputError(f"Two prompts for concept {raw['concept']!r}; give one")
            by_concept[cid] = Prompt.from_dict(raw)
        setup = resolve_stage(params)
        segmenter = load_segmenter_for(setup, params.method, ctx.models)
        _announce(ctx, segmenter)
        ctx.progress(0, 2, "reading the photo")
        image = load_photo(proj, photo)
        for prompt in by_concept.values():
            if prompt.box is not None:
                x0, y0, x1, y1 = prompt.box
                w, h = image.size
                if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
                    raise InputError(f"The box {prompt.box} lies outside the photo ({w}×{h})")
        ctx.progress(1, 2, "segmenting")
        if len(by_concept) == 1:
            (cid, prompt), = by_concept.items()
            previous = proj.current_masks(cid).get(photo.id)
            previous_mask = None
            if previous is not None and segmenter.fallback:
                from engine.masks import read_mask

                previous_mask = read_mask(str(proj.abspath(previous.file)))
            results = {cid: segment_image(segmenter, image, photo.sha256, prompt,
                                          previous_mask=previous_mask)}
        else:
            results = segment_concepts(segmenter, image, photo.sha256, by_concept)
        empty = [proj.concept(cid).name for cid, result in results.items() if result.empty]
        if empty:  # all or nothing: a half-done multi-concept photo would mislead
            raise InputError(f"{photo.original_name}: found nothing for {', '.join(empty)} where "
                             "you pointed; draw the box around the object or click on it")
        made = []
        flagged: list[dict[str, str]] = []
        for cid, result in results.items():
            mask = save_result(proj, photo, cid, result, image, profile=setup.profile.name,
                               test_model=segmenter.test_model)
            area = float(result.mask.mean())
            made.append({"photo_id": photo.id, "concept_id": cid, "mask_id": mask.id,
                         "method": mask.method, "area": area})
            name = proj.concept(cid).name
            _flag_coverage(ctx, photo_label(name, photo.original_name), area, flagged)
            ctx.preview(_preview(image, result), name)
        ctx.progress(2, 2, "saved")
        return SegmentedPhotos(segmenter.label, segmenter.fallback, segmenter.test_model, made,
                               flagged=flagged)


# --------------------------------------------------------------------------- the brush
# A stroke is drawn on the editor's downscaled view of the photo; only the pixels it covered
# change, so the rest of the mask keeps the full resolution it was made at. The result is
# stored like any other mask, labelled "painted".


def apply_stroke(base: Any, stroke: Any, mode: str) -> Any:
    """The mask after one stroke: painted pixels added (mode "add") or removed ("erase")."""
    if mode == "add":
        return base | stroke
    if mode == "erase":
        return base & ~stroke
    raise InputError(f"A brush stroke adds or erases, got {mode!r}")


def paint_mask_job(ctx: JobContext, params: PaintMaskParams) -> PaintedMask:
    from engine.intake import load_photo
    from engine.masks import read_mask, resize_mask
    from engine.project import Project
    from engine.segment.jobs import PaintedMask
    from engine.segment.sam import SegmentResult

    width, height, stride, stroke = params.width, params.height, params.stride, params.stroke
    photo_id, base_mask_id = params.photo_id, params.base_mask_id
    if len(stroke) < stride * height or stride < width:
        raise InputError("The brush stroke is damaged (wrong size); paint it again")
    with Project.open(params.project) as proj:
        photo = proj.photo(photo_id)
        ctx.progress(0, 2, "reading the photo")
        image = load_photo(proj, photo)
        base = np.zeros((image.size[1], image.size[0]), bool)
        if base_mask_id is not None:
            found = [m for m in proj.masks(photo_id=photo_id) if m.id == base_mask_id]
            if not found:
                raise InputError(f"The mask the stroke was painted on ({base_mask_id}) is gone")
            base = resize_mask(read_mask(str(proj.abspath(found[0].file))), image.size)
        drawn = np.frombuffer(stroke, np.uint8)[:stride * height].reshape(height, stride)
        painted = resize_mask(drawn[:, :width] >= 128, image.size)
        mask = apply_stroke(base, painted, params.mode)
        if not mask.any():
            raise InputError("Nothing is left of the mask: paint over the object to keep it")
        ctx.progress(1, 2, "saving")
        result = SegmentResult(mask=mask, method="painted", fallback=False,
                               label="painted by hand")
        saved = save_result(proj, photo, params.concept_id, result, image)
        ctx.progress(2, 2, "saved")
        return PaintedMask(saved.id, saved.method, float(mask.mean()))
