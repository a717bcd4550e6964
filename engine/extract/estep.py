"""The E-step: masks re-estimated from the concept tokens' attention maps on the photo.

Our own design (the paper publishes none). From the maps of the current tokens
(engine.extract.model records them at a few noise levels, photo and mirror image, and
averages them), in this order:

1. normalise each concept's map to 0..1 over the photo (min-max: attention has a floor that
   differs per token, so dividing by the maximum alone would leave it in);
2. upsample it to the work size (bilinear);
3. blend it with the concept's previous mask: s = blend·map + (1 − blend)·previous. With
   blend 0.7 and threshold 0.5 a pixel joins a mask where its map reaches 0.71 and stays in
   while it is above 0.29: hysteresis, so masks settle instead of flickering between
   iterations, while a strong signal still moves them in one step;
4. threshold and make exclusive: each pixel to the concept with the highest s if that
   reaches the threshold, else to no concept (the background token's, when there is one);
5. clean: drop specks (parts under a fifth of a concept's largest part), close holes with
   unclaimed pixels;
6. refine with the dense CRF on the photo's colours (engine.extract.crf), labels in, labels
   out, so the result stays exclusive; clean once more.

A concept whose mask comes out empty keeps its previous mask (with a warning from the
caller): an empty mask would give its token nothing to learn from.

Initial masks without a box or a mask go the same way from the class word's attention on
the untouched model, without step 3. The iteration stops when every concept's mask
overlaps its previous one with IoU >= converge_iou (default 0.95).

The E-step's noise levels (timesteps 200, 400, 600 of 1000) are ours: low enough that the
photo is still visible to the UNet, spread so that no single noise draw decides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.extract.crf import refine_labels
from engine.extract.mask_ops import (
    clean_labels,
    exclusive_labels,
    labels_to_masks,
    normalise,
    upsample,
)
from engine.masks import mask_iou


@dataclass(frozen=True)
class MaskSettings:
    threshold: float = 0.5
    blend: float = 0.7
    crf_iterations: int = 5
    crf_confidence: float = 0.8


def estimate_masks(attention: np.ndarray, image: np.ndarray, valid: np.ndarray,
                   settings: MaskSettings, previous: np.ndarray | None = None,
                   kept: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Masks [n, side, side] from attention maps [n, m, m] on `image` (uint8 [side, side, 3];
    `valid` marks its photo part), blended with the `previous` masks [n, side, side] (None:
    initial masks, no blending). Concepts in `kept` (index -> mask) keep that mask as given
    (the user's box or mask at the start): its pixels are not up for grabs."""
    count, side = attention.shape[0], image.shape[0]
    scores = upsample(normalise(attention, _small(valid, attention.shape[-1])), side)
    if previous is not None:
        scores = settings.blend * scores + (1.0 - settings.blend) * previous.astype(np.float32)
    free = valid.copy()
    for i, mask in (kept or {}).items():
        scores[i] = 0.0
        free &= ~mask
    labels = exclusive_labels(scores, settings.threshold, free)
    labels = clean_labels(labels, count)
    if settings.crf_iterations:
        labels = refine_labels(image, labels, count, confidence=settings.crf_confidence,
                               iterations=settings.crf_iterations, valid=free)
        labels = clean_labels(labels, count)
    masks = labels_to_masks(labels, count)
    for i, mask in (kept or {}).items():
        masks[i] = mask & valid
    if previous is not None:
        for i in range(count):
            if not masks[i].any():  # nothing left to learn from: keep what it had
                masks[i] = previous[i] & ~masks[np.arange(count) != i].any(axis=0)
    return masks


def _small(valid: np.ndarray, side: int) -> np.ndarray:
    """The photo's part of the square at a map's size (cells at least half photo)."""
    from engine.masks import resize_mask

    return resize_mask(valid, (side, side))


def mask_changes(new: np.ndarray, old: np.ndarray) -> list[float]:
    """IoU of each concept's new mask with its old one."""
    return [mask_iou(a, b) for a, b in zip(new, old, strict=True)]


def converged(ious: list[float], threshold: float) -> bool:
    return bool(ious) and min(ious) >= threshold
