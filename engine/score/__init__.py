"""Scores of every generated picture: CP-CLIP and TI-CLIP (Gen4Gen's metrics, defined exactly
in metrics.py) and the Custom Diffusion evaluation's text and image alignment.

    definitions.py  thresholds, published reference numbers, one-line names of the metrics
    metrics.py      the definitions, and the arithmetic (plain numpy)
    embedding.py    CLIP embeddings of pictures, crops, cut-outs and texts, batched
    detection.py    OWL-ViT boxes per class word, batched
    scorer.py       a batch of pictures scored: detection, crops, CLIP, box assignment
    score_job.py    the `score` job: incremental, resumable, cancellable; models warm
    jobs.py         the job, declared once

Public API: `SCORE`, `ScoreParams`, `ScoredPictures`; `scoring_models_present` (the generate
stage scores its pictures when it is true); `score_pictures(ctx, params)` (the score job's
work inside another job, with its context and warm models); `picture_scorer(ctx, params)`
(the metrics of pictures outside the catalogue, e.g. a guided/unguided comparison); and the
names in definitions.py. Scores are read back from the project (Project.gallery). Importing
this package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.score.definitions import (
    CUSTOM_CONCEPT101,
    DEFAULT_THRESHOLD,
    METRIC_NAMES,
    METRIC_SUMMARIES,
    TEST_MODEL_NOTE,
)
from engine.score.jobs import SCORE, ScoredPictures, ScoreParams
from engine.score.models import scoring_models_present

if TYPE_CHECKING:
    from engine.jobs import JobContext


def score_pictures(ctx: JobContext, params: ScoreParams) -> ScoredPictures:
    """The score job's work, run inside another job (same context, same warm models)."""
    from engine.score.score_job import score_job

    return score_job(ctx, params)


def picture_scorer(ctx: JobContext, params: ScoreParams) -> Any:
    """`with picture_scorer(ctx, params) as s: s.score(image, prompt)` (score_job.py)."""
    from engine.score.score_job import picture_scorer as scorer

    return scorer(ctx, params)


__all__ = ["CUSTOM_CONCEPT101", "DEFAULT_THRESHOLD", "METRIC_NAMES", "METRIC_SUMMARIES", "SCORE",
           "TEST_MODEL_NOTE", "ScoreParams", "ScoredPictures", "picture_scorer", "score_pictures",
           "scoring_models_present"]
