"""Segmentation: each concept cut out of its photos, as a mask and an RGBA cut-out.

    sam.py              SAM with cached image embeddings; clicks and boxes refine a mask;
                        several concepts in one photo from one encoder pass
    grabcut.py          the labelled offline fallback (OpenCV GrabCut) when SAM is absent (or
                        a test model)
    auto_choice.py      how the fallback picks its automatic mask among several starts
    cleanup.py          what every raw mask goes through: main part, holes, smooth edge,
                        feathered cut-out
    segment_photos.py   the jobs: store masks and cut-outs, record them, previews
    jobs.py             the `segment`, `segment-prompts` and `paint-mask` jobs, declared once

Public API: the declarations below, and for stages that point at objects (EM extraction)
`load_segmenter_for`, `segment_image`, `segment_concepts`, `Prompt`, `SegmentResult`
(engine.segment.sam) and `save_result` (a mask and its cut-out stored and recorded), each
imported on first use. Importing this package is cheap.
"""

from typing import TYPE_CHECKING

from engine.lazy import lazy_exports
from engine.segment.jobs import (
    PAINT_MASK,
    SEGMENT,
    SEGMENT_PROMPTS,
    SegmentedPhotos,
    SegmentParams,
    SegmentPromptsParams,
)

# numpy-backed: imported when first asked for.
_LAZY = {"load_segmenter_for": "engine.segment.sam", "segment_image": "engine.segment.sam",
         "segment_concepts": "engine.segment.sam", "Prompt": "engine.segment.sam",
         "SegmentResult": "engine.segment.sam", "save_result": "engine.segment.segment_photos"}


__getattr__ = lazy_exports(__name__, _LAZY)


if TYPE_CHECKING:
    from engine.segment.sam import (
        Prompt,
        SegmentResult,
        load_segmenter_for,
        segment_concepts,
        segment_image,
    )
    from engine.segment.segment_photos import save_result

__all__ = ["PAINT_MASK", "SEGMENT", "SEGMENT_PROMPTS", "Prompt", "SegmentParams",
           "SegmentPromptsParams", "SegmentResult", "SegmentedPhotos", "load_segmenter_for",
           "save_result", "segment_concepts", "segment_image"]
