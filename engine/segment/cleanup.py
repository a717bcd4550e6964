"""Mask post-processing and cut-outs, shared by SAM and the classical fallback.

A raw mask from any segmenter is cleaned the same way: keep the main connected part (and any
part a positive click touches), fill enclosed holes (except a hole a negative click sits in:
the user opened it on purpose), smooth the edge, scale it to the photo's resolution. The cut-out
gets an edge feathered *inwards*, so no fringe of the old background shows when it is pasted
on a new one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from engine.masks import fill_holes, keep_main_component, mask_box

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


def _cv2():
    import cv2

    cv2.setNumThreads(1)  # the job already owns a core; OpenCV's pool only oversubscribes
    return cv2


def smooth(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Round off jagged, pixel-stair edges: blur and threshold at one half."""
    if sigma <= 0 or not mask.any():
        return mask
    blurred = _cv2().GaussianBlur(mask.astype(np.float32), (0, 0), sigma)
    return blurred > 0.5


def clip_to_box(mask: np.ndarray, box: Box, slack: float = 0.03) -> np.ndarray:
    """Keep the mask inside the box (grown by `slack` of its size): a box means "in here"."""
    h, w = mask.shape
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * slack, (y1 - y0) * slack
    region = np.zeros_like(mask)
    region[max(0, int(y0 - dy)):min(h, int(np.ceil(y1 + dy))),
           max(0, int(x0 - dx)):min(w, int(np.ceil(x1 + dx)))] = True
    return mask & region


def clean_mask(mask: np.ndarray, *, positive: Sequence[Point] = (),
               negative: Sequence[Point] = (), box: Box | None = None,
               smooth_sigma: float | None = None) -> np.ndarray:
    """The post-processing every mask goes through (coordinates in the mask's pixels)."""
    out = mask.astype(bool)
    if box is not None:
        out = clip_to_box(out, box)
    out = keep_main_component(out, positive)
    out = fill_holes(out, negative)
    sigma = smooth_sigma if smooth_sigma is not None else max(0.7, max(out.shape) / 700)
    out = smooth(out, sigma)
    # Smoothing can cut a thin neck or close a gap into a new hole: clean once more.
    return fill_holes(keep_main_component(out, positive), negative)


BAND_ROWS = 512  # rows per band of full-resolution float work: ~8 MB at 4000 px wide


def _blur_radius(sigma: float) -> int:
    # OpenCV's own kernel size for a float Gaussian: round(8 sigma + 1), odd.
    return (round(sigma * 8 + 1) | 1) // 2 + 1


def feathered_alpha(mask: np.ndarray, radius: float | None = None) -> np.ndarray:
    """uint8 alpha that falls from 255 inside to 0 at the mask's edge (feathered inwards).
    The float work runs in bands of rows (with the blur's reach as overlap, so the result is
    the same as in one piece): memory stays bounded however large the photo."""
    if not mask.any():
        return np.zeros(mask.shape, np.uint8)
    r = radius if radius is not None else max(1.0, float(np.hypot(*mask.shape)) / 800)
    cv2 = _cv2()
    k = max(1, round(r))
    solid = mask.astype(np.uint8)
    inner = cv2.erode(solid, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    if not inner.any():  # thinner than the feather: keep it hard rather than lose it
        inner = solid
    del solid
    h = mask.shape[0]
    reach = _blur_radius(r / 2)
    out = np.empty(mask.shape, np.uint8)
    for y0 in range(0, h, BAND_ROWS):
        y1 = min(h, y0 + BAND_ROWS)
        a, b = max(0, y0 - reach), min(h, y1 + reach)
        soft = cv2.GaussianBlur(inner[a:b].astype(np.float32), (0, 0), r / 2)[y0 - a:y1 - a]
        band = inner[y0:y1]
        soft = np.where(mask[y0:y1], np.maximum(soft, band), 0.0)
        out[y0:y1] = np.clip(np.rint(soft * 255), 0, 255).astype(np.uint8)
    return out


def make_cutout(rgb: Image.Image, mask: np.ndarray, alpha: Image.Image | None = None,
                feather: float | None = None) -> Image.Image:
    """RGBA cut-out cropped to the object; the photo's own transparency is kept. Only the
    object's box (and the feather's reach around it) is worked on."""
    box = mask_box(mask)
    if box is None:
        raise ValueError("cannot cut out an empty mask")
    r = feather if feather is not None else max(1.0, float(np.hypot(*mask.shape)) / 800)
    h, w = mask.shape
    x0, y0, x1, y1 = box
    # Outside the box the mask is empty, so the feather of a crop with this margin is the
    # feather of the whole mask.
    margin = max(1, round(r)) + _blur_radius(r / 2) + 2
    cx0, cy0 = max(0, x0 - margin), max(0, y0 - margin)
    cx1, cy1 = min(w, x1 + margin), min(h, y1 + margin)
    a = feathered_alpha(mask[cy0:cy1, cx0:cx1], r)[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
    if alpha is not None:
        own = np.asarray(alpha.crop((x0, y0, x1, y1)), np.uint16)
        a = (a.astype(np.uint16) * own // 255).astype(np.uint8)
    cut = (rgb if rgb.mode == "RGB" else rgb.convert("RGB")).crop((x0, y0, x1, y1))
    cut.putalpha(Image.fromarray(np.ascontiguousarray(a), "L"))
    return cut
