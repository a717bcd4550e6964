"""The segmentation stage's jobs, declared once: automatic masks, masks from what the user
pointed at, and a brush stroke on a mask."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import InputError
from engine.jobs.declaration import (
    JobDeclaration,
    JobResult,
    ProjectParams,
    StageParams,
    param,
)

METHODS = ("auto", "sam", "fallback")


@dataclass(frozen=True, kw_only=True)
class SegmentParams(StageParams):
    concept: int | str | None = param(None, help="only this concept, by name or id "
                                                 "(default: every concept)")
    method: str = param("auto", choices=METHODS,
                        help="auto: SAM when its weights are here, else the GrabCut fallback")
    redo: bool = param(False, help="also photos that already have a mask")


@dataclass(frozen=True, kw_only=True)
class SegmentPromptsParams(StageParams):
    """Each prompt: {"concept": id or name, "box": [x0, y0, x1, y1] or None,
    "points": [[x, y], ...], "labels": [1 or 0, ...]}, in the photo's pixels."""

    photo_id: int = param(help="the photo to refine", flag="--photo", minimum=1)
    prompts: list[dict[str, Any]] = param(default_factory=list, cli=False,
                                          help="what the user pointed at, per concept")
    method: str = param("auto", choices=METHODS, help="auto, sam or fallback")

    def check(self) -> None:
        super().check()
        if not self.prompts:
            raise InputError("Point at something: give a box or a click for at least one "
                             "concept")


@dataclass(frozen=True)
class SegmentedPhotos(JobResult):
    segmenter: str | None
    fallback: bool
    test_model: bool
    masks: list[dict[str, Any]] = field(default_factory=list)  # photo/concept/mask id, area
    skipped: int = 0  # photos that already had a mask
    failed: list[dict[str, str]] = field(default_factory=list)  # photo, reason
    # Masks made but covering (nearly) all or none of their photo: photo, reason.
    flagged: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"photo {m['photo_id']}: mask {m['mask_id']} ({m['method']}, "
                 f"{m['area'] * 100:.0f}% of the photo)" for m in self.masks]
        lines += [f"check: {f['reason']}" for f in self.flagged]
        if self.skipped:
            lines.append(f"{self.skipped} photo(s) already had a mask (--redo to redo them)")
        return "\n".join(lines)


@dataclass(frozen=True, kw_only=True)
class PaintMaskParams(ProjectParams):
    photo_id: int = param(help="the photo", minimum=1)
    concept_id: int = param(help="whose mask", minimum=1)
    mode: str = param(choices=("add", "erase"), help="add or erase the painted pixels")
    stroke: bytes = param(help="the painted pixels: one byte per pixel, >= 128 painted")
    width: int = param(help="stroke width in pixels", minimum=1)
    height: int = param(help="stroke height in pixels", minimum=1)
    stride: int = param(help="bytes per stroke row", minimum=1)
    base_mask_id: int | None = param(None, help="the mask painted on (None: an empty one)")


@dataclass(frozen=True)
class PaintedMask(JobResult):
    mask_id: int
    method: str
    area: float

    def summary(self) -> str:
        return f"mask {self.mask_id} ({self.area * 100:.0f}% of the photo)"


def _segment_title(params: SegmentParams) -> str:
    return "Find the concepts in their photos" if params.concept is None else \
        f"Find {params.concept} in the photos"


SEGMENT = JobDeclaration(
    "segment", "engine.segment.segment_photos:segment_job", SegmentParams, SegmentedPhotos,
    title=_segment_title, resumable=True, changes=("photos",),
    help="cut the concepts out of their photos (masks and cut-outs)")
SEGMENT_PROMPTS = JobDeclaration(
    "segment-prompts", "engine.segment.segment_photos:segment_prompts_job",
    SegmentPromptsParams, SegmentedPhotos, title="Segment where you pointed",
    changes=("photos",))
PAINT_MASK = JobDeclaration(
    "paint-mask", "engine.segment.segment_photos:paint_mask_job", PaintMaskParams,
    PaintedMask, title="Paint the mask", changes=("photos",))
JOBS = (SEGMENT, SEGMENT_PROMPTS, PAINT_MASK)
