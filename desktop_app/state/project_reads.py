"""Small reads of the project catalogue the views share (SQLite only: cheap on the GUI thread)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.profiles import made_with_test_models

if TYPE_CHECKING:
    from engine.project import DatasetItem, Mask, Project

# How a mask was made, for people. The fallback is always named as such.
METHOD_LABELS = {
    "sam": "SAM",
    "sam-refined": "SAM, refined by you",
    "fallback-grabcut": "GrabCut fallback (no SAM)",
    "fallback-grabcut-refined": "GrabCut fallback, refined by you",
    "painted": "painted by you",
}


def method_label(method: str, test_models: bool = False) -> str:
    """How a mask was made, for people; `test_models`: a test model made it (noise)."""
    text = METHOD_LABELS.get(method, method or "unknown method")
    if test_models:
        text += " · test model: noise"
    return text


def mask_label(mask: Mask) -> str:
    """A mask's method as `method_label` says it, from what the mask records it was made by."""
    return method_label(mask.method, mask.test_model)


CHECK_HINT = "click on the object or drag a box around it"


def mask_check(mask: Mask) -> str:
    """What to tell the user about a mask flagged as likely wrong ('' when it is not)."""
    return f"Check this mask: {mask.flag}; {CHECK_HINT}." if mask.flag else ""


def concept_cutout(project: Project, concept_id: int) -> Mask | None:
    """The cut-out that stands for a concept on the canvas: its first photo's current one."""
    masks = project.current_masks(concept_id)
    for photo_id in sorted(masks):
        if masks[photo_id].cutout_file:
            return masks[photo_id]
    return None


def built_with_test_models(item: DatasetItem) -> bool:
    """Whether a dataset item was built on a test profile (its picture is noise), as its
    provenance says; the rule training applies (engine.models.profiles.made_with_test_models)."""
    return made_with_test_models(item.provenance)
