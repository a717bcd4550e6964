"""The extraction stage's job, declared once: extract concepts from one photo, or resume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import InputError
from engine.jobs.declaration import JobDeclaration, JobResult, StageParams, param

SEGMENT_METHODS = ("auto", "sam", "fallback")


@dataclass(frozen=True, kw_only=True)
class ExtractParams(StageParams):
    """A new run needs `photo` and `concepts`; a resumed one (`run_id`) keeps its own."""

    photo: str | None = param(None, positional=True, nargs="?", metavar="PHOTO",
                              help="a photo id of the project, or an image file")
    concepts: list[dict[str, Any]] = param(
        default_factory=list, cli=False,
        help='the concepts to extract: {"name", "class_word"} and optionally what you '
             'pointed at on the photo: "box" [x0, y0, x1, y1], "points" [[x, y]...], '
             '"labels" [1 object / 0 not...], in photo pixels')
    start_from_masks: bool = param(
        True, help="start each concept from its current mask on this photo when it has one "
                   "(the last run's, or the one you fixed)")
    segment_method: str = param("auto", choices=SEGMENT_METHODS,
                                help="what turns your boxes into masks: auto (SAM when its "
                                     "weights are here, else GrabCut), sam or fallback")
    config: dict[str, Any] | None = param(None, cli=False,
                                          help="ExtractConfig fields (engine.extract.config)")
    add_concepts: bool = param(
        True, help="add the concepts new to the project to its concept list for good; "
                   "with --no-add-concepts they stay only inside the extraction run (its "
                   "export keeps their tokens: generate with the run) and leave the list, "
                   "with their photos and masks, when the run finishes")
    run_id: int | None = param(None, cli=False, minimum=1,
                               help="resume this run instead of starting a new one")

    def check(self) -> None:
        super().check()
        if self.run_id is None and (not self.photo or not self.concepts):
            raise InputError("Give the photo and the concepts to extract (e.g. --concepts "
                             "mochi:cat,rex:dog), or a run to resume")


@dataclass(frozen=True)
class ExtractedConcepts(JobResult):
    run_id: int
    steps: int  # optimiser steps done (fewer than the budget when the masks converged)
    iterations: int  # E-steps done
    converged: bool
    resumed_from: int
    final_loss: float | None
    # per concept: concept_id, name, token, class_word, photo_id, mask_id (None: no mask
    # found), area (share of the photo)
    concepts: list[dict[str, Any]] = field(default_factory=list)
    export_dir: str = ""
    run_dir: str = ""
    masks_dir: str = ""  # runs/<id>/masks: iter-NNN/ per iteration (engine.extract.iterations)
    added_to_project: bool = True  # False: the new concepts live only inside the run

    def summary(self) -> str:
        resumed = f" (resumed at step {self.resumed_from})" if self.resumed_from else ""
        ended = "masks converged" if self.converged else "step budget used"
        loss = "n/a" if self.final_loss is None else f"{self.final_loss:.4f}"
        lines = [f"Run {self.run_id}: {self.steps} steps, {self.iterations} iterations "
                 f"({ended}){resumed}, final loss {loss}."]
        for c in self.concepts:
            where = "no mask found" if c.get("mask_id") is None else \
                f"mask {c['mask_id']} ({c['area'] * 100:.0f}% of the photo)"
            lines.append(f"  {c['token']} {c['name']} ({c['class_word']}): {where}")
        lines.append(f"Concepts in {self.export_dir}")
        if not self.added_to_project:
            lines.append(f"Kept only inside run {self.run_id}: the concepts new to the "
                         "project were not added to its concept list.")
        return "\n".join(lines)


def _title(params: ExtractParams) -> str:
    if params.run_id is not None:
        return f"Resume extraction run {params.run_id}"
    names = ", ".join(str(c.get("name")) for c in params.concepts)
    return f"Extract {names} from one photo"


EXTRACT = JobDeclaration(
    "extract", "engine.extract.extract_job:extract_job", ExtractParams, ExtractedConcepts,
    title=_title, resumable=True, changes=("concepts", "photos", "runs"),
    owner_check="engine.train.runs:run_owned_elsewhere", continues_on=("run_id",),
    help="learn several concepts (tokens and masks together) from one photo")
JOBS = (EXTRACT,)
