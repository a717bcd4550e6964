"""The project store: a folder with a SQLite catalogue and content-addressed files.

The gallery's data is on Project too: `gallery(GalleryQuery(...))`, `set_favourite`,
`set_rating`, `trash_generations` / `restore_generations` / `empty_trash`,
`export_generations` (engine/project/gallery.py, gallery_query.py, trash.py,
gallery_export.py).
"""

from engine.project.catalogue import TOKEN_PATTERN, Project, concept_dir_name, concept_token
from engine.project.class_words import check_class_word, class_word_problem
from engine.project.connection import CATALOGUE_NAME
from engine.project.gallery import ConceptScore, GalleryImage, prompt_concepts
from engine.project.gallery_export import RECIPE_KEY, ExportedPicture, read_recipe
from engine.project.gallery_query import SORTS, TRASH_VIEWS, GalleryQuery
from engine.project.locks import (
    exclusive,
    exclusive_refusal,
    held,
    holder_of,
    set_program,
)
from engine.project.records import (
    IMAGE_ONLY_METRICS,
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
    "CATALOGUE_NAME",
    "CURRENT_VERSION",
    "IMAGE_ONLY_METRICS",
    "RECIPE_KEY",
    "REVIEW_STATES",
    "RUN_STATUSES",
    "SCORE_METRICS",
    "SORTS",
    "TOKEN_PATTERN",
    "TRASH_VIEWS",
    "Concept",
    "ConceptScore",
    "DatasetItem",
    "ExportedPicture",
    "GalleryImage",
    "GalleryQuery",
    "Generation",
    "Layout",
    "LayoutObject",
    "Mask",
    "Photo",
    "Project",
    "Run",
    "Score",
    "check_class_word",
    "class_word_problem",
    "concept_dir_name",
    "concept_token",
    "exclusive",
    "exclusive_refusal",
    "held",
    "holder_of",
    "prompt_concepts",
    "read_recipe",
    "set_program",
]
