"""The personal mini-MyCanvas dataset: cut-outs composed into layouts, the background
repainted, captions, a quality filter, an image-folder export.

    compose.py   cut-outs pasted into their boxes (aspect kept, seeded augmentation),
                 per-concept masks with occlusion
    inpaint.py   Inpainter: the background repainted around the objects, identity pasted back
    caption.py   token and plain captions of a layout
    quality.py   visibility, seams, CLIP likeness to the photos → auto-kept / auto-rejected
    build.py     the resumable `build-dataset` job
    export.py    the `export-dataset` job (image folder + metadata.jsonl)
    jobs.py      both jobs, declared once

Public API: `BUILD_DATASET`, `EXPORT_DATASET` and their parameters and results. Importing
this package is cheap.
"""

from engine.dataset.jobs import (
    BUILD_DATASET,
    EXPORT_DATASET,
    BuildDatasetParams,
    BuiltDataset,
    ExportDatasetParams,
    ExportedDataset,
)

__all__ = ["BUILD_DATASET", "EXPORT_DATASET", "BuildDatasetParams", "BuiltDataset",
           "ExportDatasetParams", "ExportedDataset"]
