"""The personal mini-MyCanvas dataset: cut-outs composed into layouts, the background
repainted, captions, a quality filter, an image-folder export.

    compose.py   cut-outs pasted into their boxes (aspect kept, seeded augmentation),
                 per-concept masks with occlusion
    inpaint.py   Inpainter: the background repainted around the objects, identity pasted back
    caption.py   token and plain captions of a layout
    quality.py   visibility, seams, CLIP likeness to the photos → auto-kept / auto-rejected
    build.py     the resumable `build-dataset` job
    export.py    the `export-dataset` job (image folder + metadata.jsonl)
    openvino_models.py    the inpainting pipeline with OpenVINO computing UNet and VAE (CPU)
    openvino_store.py     where conversions live, what they record; torch or OpenVINO
    openvino_prepare.py   the `prepare-openvino` job: convert, verify, calibrate
    jobs.py      the jobs, declared once

Public API: `BUILD_DATASET`, `EXPORT_DATASET`, `PREPARE_OPENVINO` and their parameters and
results; `openvino_status()` (one line for `doctor`). Importing this package is cheap.
"""

from engine.dataset.jobs import (
    BUILD_DATASET,
    EXPORT_DATASET,
    PREPARE_OPENVINO,
    BuildDatasetParams,
    BuiltDataset,
    ExportDatasetParams,
    ExportedDataset,
    OpenVinoPrepared,
    PrepareOpenVinoParams,
)
from engine.dataset.openvino_store import openvino_status

__all__ = ["BUILD_DATASET", "EXPORT_DATASET", "PREPARE_OPENVINO", "BuildDatasetParams",
           "BuiltDataset", "ExportDatasetParams", "ExportedDataset", "OpenVinoPrepared",
           "PrepareOpenVinoParams", "openvino_status"]
