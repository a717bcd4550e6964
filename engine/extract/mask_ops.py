"""Mask arithmetic of the E-step and the run: the photo's square frame, normalising maps,
exclusive labels, cleaning, and the coloured preview. Masks are bool arrays; a labelling is
an int array (0 = no concept, i + 1 = concept i).

The photo is letterboxed into the model's square (`Frame`), not cropped: a concept at the
photo's edge stays in view, and the padding (the edge pixels repeated) belongs to no concept
and to no loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from engine.masks import fill_holes, keep_main_component

# One colour per concept in previews (and in the desktop's Extract page): distinct on photos.
COLOURS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240))


def _cv2():
    import cv2

    cv2.setNumThreads(1)  # the job already owns a core
    return cv2


@dataclass(frozen=True)
class Frame:
    """Where a width×height photo sits in a side×side square: scaled to fit, centred."""

    width: int
    height: int
    side: int

    @property
    def scale(self) -> float:
        return self.side / max(self.width, self.height)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the photo inside the square, end exclusive."""
        w = max(1, round(self.width * self.scale))
        h = max(1, round(self.height * self.scale))
        x0, y0 = (self.side - w) // 2, (self.side - h) // 2
        return x0, y0, x0 + w, y0 + h

    def valid(self) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        out = np.zeros((self.side, self.side), bool)
        out[y0:y1, x0:x1] = True
        return out

    def image(self, rgb: Image.Image) -> np.ndarray:
        """The photo in the square (uint8 [side, side, 3]); the padding repeats the edges."""
        cv2 = _cv2()
        x0, y0, x1, y1 = self.box
        small = np.asarray(rgb.convert("RGB").resize((x1 - x0, y1 - y0),
                                                     Image.Resampling.BICUBIC))
        return cv2.copyMakeBorder(small, y0, self.side - y1, x0, self.side - x1,
                                  cv2.BORDER_REPLICATE)

    def mask_to_square(self, mask: np.ndarray) -> np.ndarray:
        """A mask at the photo's size, placed in the square."""
        from engine.masks import resize_mask

        x0, y0, x1, y1 = self.box
        out = np.zeros((self.side, self.side), bool)
        out[y0:y1, x0:x1] = resize_mask(mask, (x1 - x0, y1 - y0))
        return out

    def crop(self, square: np.ndarray) -> np.ndarray:
        """The photo's part of a square array (at the square's scale)."""
        x0, y0, x1, y1 = self.box
        return square[y0:y1, x0:x1]

    def box_to_square(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        x0, y0, _, _ = self.box
        s = self.scale
        return (box[0] * s + x0, box[1] * s + y0, box[2] * s + x0, box[3] * s + y0)


def normalise(maps: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Each map [n, h, w] stretched to 0..1 (its minimum to 0, maximum to 1), measured inside
    `valid` (a [h, w] bool) when given; a flat map becomes 0."""
    out = np.zeros(maps.shape, np.float32)
    for i, m in enumerate(maps.astype(np.float32)):
        inside = m[valid] if valid is not None and valid.any() else m
        low, high = float(inside.min()), float(inside.max())
        if high - low > 1e-12:
            out[i] = np.clip((m - low) / (high - low), 0.0, 1.0)
    return out


def upsample(maps: np.ndarray, side: int) -> np.ndarray:
    """Maps [n, m, m] bilinearly resized to [n, side, side]."""
    cv2 = _cv2()
    return np.stack([cv2.resize(m.astype(np.float32), (side, side),
                                interpolation=cv2.INTER_LINEAR) for m in maps])


def exclusive_labels(scores: np.ndarray, threshold: float,
                     valid: np.ndarray | None = None) -> np.ndarray:
    """Each pixel to the concept with the highest score, if that score reaches `threshold`;
    else to no concept (0). Ties go to the lower index. scores [n, h, w] -> labels [h, w]."""
    best = scores.argmax(axis=0)
    labels = np.where(scores.max(axis=0) >= threshold, best + 1, 0)
    if valid is not None:
        labels = np.where(valid, labels, 0)
    return labels.astype(np.int32)


def labels_to_masks(labels: np.ndarray, count: int) -> np.ndarray:
    return np.stack([labels == i + 1 for i in range(count)])


def masks_to_labels(masks: np.ndarray) -> np.ndarray:
    """Exclusive masks [n, h, w] to labels; a pixel two masks claim goes to the smaller mask
    (the more specific one)."""
    labels = np.zeros(masks.shape[1:], np.int32)
    order = np.argsort([-int(m.sum()) for m in masks], kind="stable")  # largest first
    for i in order:
        labels[masks[i]] = i + 1
    return labels


def clean_labels(labels: np.ndarray, count: int) -> np.ndarray:
    """Per concept: specks dropped, holes closed with unclaimed pixels. Stays exclusive."""
    out = np.zeros_like(labels)
    for i in range(count):
        kept = keep_main_component(labels == i + 1, keep_fraction=0.2)
        out[kept] = i + 1
    for i in range(count):
        filled = fill_holes(out == i + 1, free=out == 0)
        out[filled] = i + 1
    return out


def overlay(rgb: np.ndarray, masks: Sequence[np.ndarray] | np.ndarray,
            alpha: float = 0.5) -> Image.Image:
    """The photo with each concept's mask tinted in its colour (COLOURS, in order) and
    outlined: the preview of an iteration."""
    cv2 = _cv2()
    out = rgb.astype(np.float32).copy()
    for i, mask in enumerate(masks):
        colour = np.array(COLOURS[i % len(COLOURS)], np.float32)
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
    shown = np.clip(out, 0, 255).astype(np.uint8)
    for i, mask in enumerate(masks):
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(shown, contours, -1, COLOURS[i % len(COLOURS)], 1)
    return Image.fromarray(shown, "RGB")
