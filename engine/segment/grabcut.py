"""The offline fallback segmenter: OpenCV GrabCut, used when no SAM weights are present.

GrabCut models foreground and background colours with two Gaussian mixtures and cuts the
image along colour edges. It is seeded from what the user (or the "photo of one thing"
assumption) says:

* automatic: several starts (centre boxes of three sizes, and the pixels least like the
  photo's border) are cut and the most believable result kept (engine/segment/auto_choice.py);
  a start is *probably* foreground, never *surely*, so an object that runs off the edge of the
  frame (a close-up of a cat) is not cut at the box;
* a box: outside it is surely background, inside probably foreground;
* clicks: a small disc around each positive click is surely foreground, around each negative
  click surely background; with a previous mask, that mask is the starting guess.

It runs on a copy at most `work_side` pixels long (GrabCut is slow: 0.3-1 s per photo at
320 px on one shared core) and returns a soft mask at the size it was given. Results say they
come from the fallback.

Measured (tests/benchmarks/bench_segment.py; IoU against tests/data/reference_masks, the
figures in README.md): automatic mean 0.79 over four photos, worst 0.70 (the astronaut: the
wall, the shuttle model and its stand beside her taken in). The automatic choice costs about
twice one cut (4 starts × 2 iterations, then 3 more on the best). A user's box still does
better.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.segment.cleanup import Box, Point, _cv2

CLICK_RADIUS = 0.02  # of the work image's diagonal
CHOICE_ITERATIONS = 2  # GrabCut iterations after which the automatic starts are compared


def _foreground(labels: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


class GrabCutSegmenter:
    """Classical foreground extraction with the same prompts SAM takes."""

    name = "grabcut"
    method = "fallback-grabcut"
    refined_method = "fallback-grabcut-refined"
    fallback = True
    test_model = False

    def __init__(self, work_side: int = 320, iterations: int = 5,
                 reason: str = "no SAM weights on this computer", detail: str = "") -> None:
        self.work_side = work_side
        self.iterations = iterations
        self.label = (f"Classical fallback (GrabCut): {reason}. Masks are rougher than SAM's; "
                      "check them, or draw a box around the object.")
        self.detail = detail  # why SAM could not be used, for the log

    # The same interface as SamSegmenter; there is no embedding to cache.
    def forget(self, key: str | None = None) -> None:
        return None

    def _shrink(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        h, w = image.shape[:2]
        scale = min(1.0, self.work_side / max(h, w))
        if scale >= 1.0:
            return image, 1.0
        cv2 = _cv2()
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale

    def _run(self, image: np.ndarray, seeds: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
        return self._to_size(self._cut(image, seeds), out_shape)

    @staticmethod
    def _to_size(hard: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
        """A bool cut as a float mask of `out_shape` (bilinear: the clean-up thresholds it)."""
        cv2 = _cv2()
        soft = hard.astype(np.float32)
        h, w = out_shape
        if soft.shape != (h, w):
            soft = cv2.resize(soft, (w, h), interpolation=cv2.INTER_LINEAR)
        return soft

    def _cut(self, image: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """GrabCut from `seeds` (work size): the foreground, bool."""
        return _foreground(self._grabcut(image, seeds, self.iterations)[0])

    def _grabcut(self, image: np.ndarray, seeds: np.ndarray, iterations: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`iterations` of GrabCut from `seeds`: the labels and both colour models, so that
        `_resume` can go on from them."""
        cv2 = _cv2()
        seeds = seeds.copy()
        surely_or_probably_bg = (seeds == cv2.GC_BGD) | (seeds == cv2.GC_PR_BGD)
        if not surely_or_probably_bg.any():  # GrabCut needs both sides to learn colours
            seeds[[0, -1], :] = cv2.GC_PR_BGD
            seeds[:, [0, -1]] = cv2.GC_PR_BGD
        if not ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).any():
            h, w = seeds.shape
            seeds[h // 3: 2 * h // 3 + 1, w // 3: 2 * w // 3 + 1] = cv2.GC_PR_FGD
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        bgr = np.ascontiguousarray(image[..., ::-1])
        # GrabCut seeds its colour models with k-means from OpenCV's global random state,
        # which earlier OpenCV calls of the process move: reset it to a fresh process's
        # state (RNG(0) is RNG(0xffffffff)), so a photo's mask never depends on what ran before.
        cv2.setRNGSeed(0)
        cv2.grabCut(bgr, seeds, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
        return seeds, bgd, fgd

    @staticmethod
    def _resume(image: np.ndarray, state: tuple[np.ndarray, np.ndarray, np.ndarray],
                iterations: int) -> np.ndarray:
        """GrabCut's labels after `iterations` more from `state` (what `_grabcut` returned):
        the same as running them all at once."""
        cv2 = _cv2()
        labels, bgd, fgd = (a.copy() for a in state)
        if iterations > 0:
            bgr = np.ascontiguousarray(image[..., ::-1])
            cv2.grabCut(bgr, labels, None, bgd, fgd, iterations, cv2.GC_EVAL)
        return labels

    def auto(self, image: np.ndarray, key: str) -> tuple[np.ndarray, float | None]:
        """Soft foreground (H, W) in [0, 1] for "a photo of one thing"; no score. Several
        starts are cut and the most believable result kept (engine.segment.auto_choice)."""
        from engine.segment import auto_choice

        small, _ = self._shrink(image)
        starts = [auto_choice.box_start(small.shape[:2], m) for m in auto_choice.BOX_MARGINS]
        salient = auto_choice.salient_start(small)
        if salient is not None:
            starts.append(salient)
        # Each start is judged after a few iterations (they settle the cut's shape); only the
        # winner runs the rest.
        first = min(CHOICE_ITERATIONS, self.iterations)
        states = [self._grabcut(small, seeds, first) for seeds in starts]
        best = auto_choice.choose(small, [_foreground(s[0]) for s in states])
        labels = self._resume(small, states[best], self.iterations - first)
        return self._to_size(_foreground(labels), image.shape[:2]), None

    def prompted(self, image: np.ndarray, key: str, points: Sequence[Point] = (),
                 labels: Sequence[int] = (), box: Box | None = None,
                 previous: np.ndarray | None = None) -> tuple[np.ndarray, float | None, None]:
        """Soft mask from clicks/box (image pixels); `previous` (bool, image size) seeds it."""
        cv2 = _cv2()
        small, scale = self._shrink(image)
        h, w = small.shape[:2]
        seeds = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
        if previous is not None and previous.any():
            prev = cv2.resize(previous.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
            seeds[prev > 0] = cv2.GC_PR_FGD
        elif box is not None:
            x0, y0, x1, y1 = (round(v * scale) for v in box)
            seeds[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = cv2.GC_PR_FGD
        else:  # clicks only: grow a guess around each positive click
            reach = max(3, int(0.15 * np.hypot(h, w)))
            for (x, y), label in zip(points, labels, strict=True):
                if label:
                    cv2.circle(seeds, (int(x * scale), int(y * scale)), reach,
                               int(cv2.GC_PR_FGD), -1)
        if box is not None:
            x0, y0, x1, y1 = (round(v * scale) for v in box)
            outside = np.ones((h, w), bool)
            outside[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = False
            seeds[outside] = cv2.GC_BGD
        radius = max(2, int(CLICK_RADIUS * np.hypot(h, w)))
        for (x, y), label in zip(points, labels, strict=True):
            value = cv2.GC_FGD if label else cv2.GC_BGD
            cv2.circle(seeds, (int(x * scale), int(y * scale)), radius, int(value), -1)
        return self._run(small, seeds, image.shape[:2]), None, None
