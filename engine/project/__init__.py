"""The project store: a folder with a SQLite catalogue and content-addressed files."""

from engine.project.catalogue import Project, concept_dir_name
from engine.project.records import (
    REVIEW_STATES,
    RUN_STATUSES,
    SCORE_METRICS,
    Concept,
    DatasetItem,
    Generation,
    Layout,
    LayoutObject,
    Mask,
    Photo,
    Run,
    Score,
)
from engine.project.schema import CURRENT_VERSION

__all__ = [
    "CURRENT_VERSION",
    "REVIEW_STATES",
    "RUN_STATUSES",
    "SCORE_METRICS",
    "Concept",
    "DatasetItem",
    "Generation",
    "Layout",
    "LayoutObject",
    "Mask",
    "Photo",
    "Project",
    "Run",
    "Score",
    "concept_dir_name",
]
