"""The numbers the metrics are defined with (engine/score/metrics.py says what they mean),
and short texts that name each metric wherever it is shown. Cheap to import."""

from __future__ import annotations

DEFAULT_THRESHOLD = 0.1  # OWL-ViT confidence a box needs to count (metrics.py says why)
NMS_IOU = 0.5  # boxes of one class word overlapping more than this are one detection
CLIPSCORE_WEIGHT = 2.5  # CLIPScore's w, the scale of CustomConcept101's text alignment

# Multi-concept Custom Diffusion on CustomConcept101, as published: (low, high).
CUSTOM_CONCEPT101: dict[str, tuple[float, float]] = {
    "cd-text": (0.757, 0.763),
    "cd-image": (0.658, 0.668),
}

# One line each, for the report, the gallery and the window.
METRIC_NAMES: dict[str, str] = {
    "cp-clip": "CP-CLIP",
    "ti-clip": "TI-CLIP",
    "cd-text": "Text alignment (CD)",
    "cd-image": "Image alignment (CD)",
}
METRIC_SUMMARIES: dict[str, str] = {
    "cp-clip": "each concept found by OWL-ViT, its crop compared by CLIP with the concept's "
               "cut-outs (mean over cut-outs); not found scores 0; mean over the concepts",
    "ti-clip": "CLIP similarity of the picture and its prompt with every concept token "
               "replaced by its class word",
    "cd-text": "CLIPScore, 2.5 × max(0, TI-CLIP): CustomConcept101's text alignment",
    "cd-image": "CLIP similarity of the whole picture and the concepts' photos: "
                "CustomConcept101's image alignment",
}
TEST_MODEL_NOTE = ("scored by the tiny test models (random weights): these numbers test the "
                   "pipeline and say nothing about the pictures")
