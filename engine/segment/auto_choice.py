"""How the GrabCut fallback picks its automatic mask without being told where the object is.

One fixed start (a centre box) fails two ways on real photos: a small object in a big scene
(the rocket) gets half the sky, and a start box smaller than the object keeps only a part. So
several starts are cut and the most believable result is kept:

* centre boxes with 5 %, 15 % and 25 % margins (big, usual and small objects);
* a *salient* start: the pixels least like the photo's border colours (k-means on a strip
  around the edge, Otsu's threshold on the distance to the nearest border colour), which
  finds an object wherever it stands.

Each result is judged by how different its edge's inside is from its outside (the colour
histograms of a thin ring on each side: a mask along the object's outline separates them; one
cut through fur or sky does not), plus a little for size, so of two equally clean cuts the
whole object wins over a part. A result covering nearly all or nearly none of the photo is
only taken when every start gave one.

Measured against the hand-checked reference masks in tests/benchmarks/bench_segment.py.
"""

from __future__ import annotations

import numpy as np

from engine.segment.cleanup import _cv2, fill_holes, keep_main_component

BOX_MARGINS = (0.05, 0.15, 0.25)
BORDER_STRIP = 0.04  # of the shorter side: where the border colours are learned
BORDER_COLOURS = 8
RING = 0.03  # of the diagonal: the width of the rings either side of a mask's edge
SIZE_WEIGHT = 0.25  # how much coverage (up to half the photo) adds to a cut's score
# Coverage outside these bounds is implausible for "a photo of one thing"
# (engine.segment.segment_photos flags stored masks with the same idea).
PLAUSIBLE = (0.005, 0.92)


def box_start(shape: tuple[int, int], margin: float) -> np.ndarray:
    """GrabCut seeds: probably foreground inside a centre box, probably background outside."""
    cv2 = _cv2()
    h, w = shape
    seeds = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    my, mx = int(margin * h), int(margin * w)
    seeds[my:h - my, mx:w - mx] = cv2.GC_PR_FGD
    return seeds


def unlike_border(rgb: np.ndarray) -> np.ndarray:
    """Per pixel, the Lab distance to the nearest of the border's main colours (smoothed)."""
    cv2 = _cv2()
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    h, w = lab.shape[:2]
    b = max(2, int(BORDER_STRIP * min(h, w)))
    border = np.concatenate([lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3),
                             lab[:, :b].reshape(-1, 3), lab[:, -b:].reshape(-1, 3)])
    k = min(BORDER_COLOURS, len(border))
    cv2.setRNGSeed(0)  # k-means starts from OpenCV's global random state
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    _, _, centres = cv2.kmeans(border, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    nearest = np.full((h, w), np.inf, np.float32)
    for centre in centres:
        nearest = np.minimum(nearest, np.linalg.norm(lab - centre, axis=-1))
    return cv2.GaussianBlur(nearest, (0, 0), 2)


def salient_start(rgb: np.ndarray) -> np.ndarray | None:
    """GrabCut seeds from the pixels unlike the border, or None when nothing stands out."""
    cv2 = _cv2()
    distance = unlike_border(rgb)
    top = float(distance.max())
    if top <= 1e-6:
        return None
    scaled = np.clip(distance / top * 255, 0, 255).astype(np.uint8)
    _, salient = cv2.threshold(scaled, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if not salient.any():
        return None
    seeds = np.full(salient.shape, cv2.GC_PR_BGD, np.uint8)
    seeds[salient > 0] = cv2.GC_PR_FGD
    return seeds


def main_part(mask: np.ndarray) -> np.ndarray:
    """What the clean-up keeps of a raw cut: its main part, holes filled."""
    return fill_holes(keep_main_component(mask))


def edge_contrast(rgb: np.ndarray, mask: np.ndarray) -> float:
    """How unlike the colours just inside the mask's edge are to those just outside (total
    variation distance of 8×8×8-bin Lab histograms, 0..1); 0 when either ring is empty."""
    cv2 = _cv2()
    h, w = mask.shape
    r = max(2, int(RING * np.hypot(h, w)))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    m8 = mask.astype(np.uint8)
    inner = mask & ~cv2.erode(m8, disk).astype(bool)
    outer = cv2.dilate(m8, disk).astype(bool) & ~mask
    if inner.sum() < 10 or outer.sum() < 10:
        return 0.0
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)

    def histogram(region: np.ndarray) -> np.ndarray:
        counts = cv2.calcHist([lab], [0, 1, 2], region.astype(np.uint8), [8, 8, 8],
                              [0, 256] * 3).ravel()
        return counts / counts.sum()

    return float(0.5 * np.abs(histogram(inner) - histogram(outer)).sum())


def score(rgb: np.ndarray, mask: np.ndarray) -> float:
    return edge_contrast(rgb, mask) + SIZE_WEIGHT * min(float(mask.mean()), 0.5)


def plausible(mask: np.ndarray) -> bool:
    low, high = PLAUSIBLE
    return low < float(mask.mean()) < high


def choose(rgb: np.ndarray, cuts: list[np.ndarray]) -> int:
    """The index of the most believable of the cuts of `rgb` (judged by their main parts):
    a plausible one whenever there is one."""
    parts = [main_part(c) for c in cuts]
    pool = [i for i, p in enumerate(parts) if plausible(p)] or list(range(len(parts)))
    return max(pool, key=lambda i: score(rgb, parts[i]))
