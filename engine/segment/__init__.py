"""Segmentation: each concept cut out of its photos, as a mask and an RGBA cut-out.

    sam.py              SAM with cached image embeddings; clicks and boxes refine a mask;
                        several concepts in one photo from one encoder pass
    grabcut.py          the labelled offline fallback (OpenCV GrabCut) when SAM is absent
    cleanup.py          what every raw mask goes through: main part, holes, smooth edge,
                        feathered cut-out
    segment_photos.py   the jobs: store masks and cut-outs, record them, previews
    jobs.py             the `segment`, `segment-prompts` and `paint-mask` jobs, declared once

Public API: the declarations below, and `load_segmenter_for`, `segment_image`,
`segment_concepts`, `Prompt` (engine.segment.sam) for stages that point at objects (EM
extraction). Importing this package is cheap.
"""

from engine.segment.jobs import (
    PAINT_MASK,
    SEGMENT,
    SEGMENT_PROMPTS,
    SegmentedPhotos,
    SegmentParams,
    SegmentPromptsParams,
)

__all__ = ["PAINT_MASK", "SEGMENT", "SEGMENT_PROMPTS", "SegmentParams",
           "SegmentPromptsParams", "SegmentedPhotos"]
