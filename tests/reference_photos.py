"""The reference photos with hand-checked masks (tests/data/reference_masks, made by
tests/data/make_reference_masks.py): what the segmentation fallback is measured against, by the
benchmark (tests/benchmarks/bench_segment.py, a table per photo) and by the bar in
tests/test_segment_reference.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REFERENCE = Path(__file__).resolve().parent / "data" / "reference_masks"
# name -> the scikit-image sample it is
PHOTOS = {"cat": "chelsea", "coffee": "coffee", "rocket": "rocket", "astronaut": "astronaut"}


def reference_photo(name: str):
    """The photo as the app decodes it (engine.intake.DecodedImage)."""
    import skimage.data
    from PIL import Image

    from engine.intake.photos import DecodedImage

    return DecodedImage(Image.fromarray(getattr(skimage.data, PHOTOS[name])()), None, "PNG")


def reference_mask(name: str) -> np.ndarray:
    from PIL import Image

    with Image.open(REFERENCE / f"{name}.png") as im:
        return np.asarray(im) >= 128


def automatic_ious(segmenter) -> dict[str, tuple[float, float]]:
    """name -> (IoU of the automatic mask with the reference, the mask's share of the photo)."""
    from engine.masks import mask_iou
    from engine.segment.sam import segment_image

    out = {}
    for name in PHOTOS:
        mask = segment_image(segmenter, reference_photo(name), name).mask
        out[name] = (mask_iou(mask, reference_mask(name)), float(mask.mean()))
    return out
