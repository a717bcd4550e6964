"""The score stage's job, declared once: score generated pictures (CP-CLIP, TI-CLIP and the
Custom Diffusion pair) that have no scores yet, or all of them again."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.jobs.declaration import JobDeclaration, JobResult, StageParams, param
from engine.score.definitions import DEFAULT_THRESHOLD, TEST_MODEL_NOTE

# The profile roles scoring loads: CLIP and OWL-ViT (the chain and the window read this).
SCORING_ROLES = ("clip", "detector")


@dataclass(frozen=True, kw_only=True)
class ScoreParams(StageParams):
    run_id: int | None = param(None, flag="--run", minimum=1, metavar="RUN",
                               help="only the pictures of this run (default: every run)")
    generation_ids: list[int] | None = param(
        None, cli=False, help="only these pictures (the chain passes what it generated)")
    rescore: bool = param(False, help="score again pictures that already have scores")
    threshold: float = param(DEFAULT_THRESHOLD, minimum=0.0, maximum=1.0,
                             help="OWL-ViT confidence a box needs to count as the concept")
    batch_size: int = param(8, minimum=1, maximum=256,
                            help="pictures scored together (detector and CLIP passes)")
    rescore_before: str | None = param(
        None, cli=False, help="with rescore: only scores older than this time (set by the "
                              "job itself, so a resumed rescore does not start over)")


@dataclass(frozen=True)
class ScoredPictures(JobResult):
    scored: int  # pictures scored by this job
    remaining: int  # pictures it was asked for that still have no scores (failures)
    generation_ids: list[int] = field(default_factory=list)  # the pictures it scored
    failures: list[str] = field(default_factory=list)  # one reason per picture it skipped
    mean_cp_clip: float | None = None  # over the pictures it scored that name a concept
    mean_ti_clip: float | None = None
    model: str = ""  # the models that scored them
    test_model: bool = False  # the tiny test models: the numbers mean nothing

    def summary(self) -> str:
        if not self.scored and not self.failures:
            return "Every picture already has scores; nothing to score."
        parts = [f"Scored {self.scored} picture(s)"]
        if self.mean_cp_clip is not None:
            parts.append(f"mean CP-CLIP {self.mean_cp_clip:.3f}")
        if self.mean_ti_clip is not None:
            parts.append(f"mean TI-CLIP {self.mean_ti_clip:.3f}")
        text = ", ".join(parts) + "."
        if self.failures:
            text += f" {len(self.failures)} could not be scored (first: {self.failures[0]})."
        if self.test_model:
            text += f" Test models: {TEST_MODEL_NOTE}."
        return text


SCORE = JobDeclaration(
    "score", "engine.score.score_job:score_job", ScoreParams, ScoredPictures,
    title=lambda p: "Score the pictures" + (f" of run {p.run_id}" if p.run_id else ""),
    resumable=True, changes=("generations",),
    help="score generated pictures: CP-CLIP, TI-CLIP and Custom Diffusion's pair")
JOBS = (SCORE,)
