"""Dense CRF refinement of a labelling on the photo's colours (`pydensecrf2`).

pydensecrf2 is Krähenbühl and Koltun's fully connected CRF ("Efficient Inference in Fully
Connected CRFs with Gaussian Edge Potentials", 2011; the permutohedral-lattice mean field),
the refinement the paper uses. Checked before choosing it: its one release (1.1) is a source
distribution that builds on Python 3.11 here (Cython and a C++ compiler, which our set-up
already installs for llama-cpp-python), works with numpy 2, and runs on one core (~0.04 s
for two labels at 256², see tests/benchmarks/bench_extract.py for the E-step).

Kernels, as DeepLab's use of it: a smoothness kernel (Gaussian over position, sxy 3, weight
3) that removes isolated pixels, and an appearance kernel (bilateral over position and
colour, weight 10, colour scale 13) that snaps edges to colour edges. The appearance kernel's
reach, 80 px at DeepLab's ~500 px, scales with the image here (0.15 of its longer side), so
the same settings serve the 64 px test model and a 1024 px photo.
"""

from __future__ import annotations

import numpy as np

SMOOTH_SXY, SMOOTH_WEIGHT = 3.0, 3.0
APPEARANCE_REACH, APPEARANCE_SRGB, APPEARANCE_WEIGHT = 0.15, 13.0, 10.0


def crf_probabilities(image: np.ndarray, probs: np.ndarray, iterations: int = 5) -> np.ndarray:
    """Mean-field marginals [n, H, W] of a dense CRF whose unary term is -log(probs).
    image: uint8 [H, W, 3]; probs: [n, H, W] (each pixel's label distribution)."""
    import pydensecrf.densecrf as dcrf

    n, h, w = probs.shape
    if image.shape[:2] != (h, w):
        raise ValueError(f"image {image.shape[:2]} and probabilities {(h, w)} differ in size")
    if iterations <= 0 or n < 2:
        return probs.astype(np.float32)
    p = np.clip(probs.astype(np.float32), 1e-6, None)
    p /= p.sum(axis=0, keepdims=True)
    crf = dcrf.DenseCRF2D(w, h, n)
    crf.setUnaryEnergy(np.ascontiguousarray(-np.log(p).reshape(n, -1)))
    crf.addPairwiseGaussian(sxy=SMOOTH_SXY, compat=SMOOTH_WEIGHT)
    crf.addPairwiseBilateral(sxy=max(SMOOTH_SXY, APPEARANCE_REACH * max(h, w)),
                             srgb=APPEARANCE_SRGB,
                             rgbim=np.require(image[..., :3], np.uint8, ["C", "W"]),
                             compat=APPEARANCE_WEIGHT)
    return np.asarray(crf.inference(iterations), np.float32).reshape(n, h, w)


def label_probabilities(labels: np.ndarray, count: int, confidence: float) -> np.ndarray:
    """A labelling (0..count) as distributions: its label with `confidence`, the rest shared."""
    n = count + 1
    probs = np.full((n, *labels.shape), (1.0 - confidence) / (n - 1), np.float32)
    for k in range(n):
        probs[k][labels == k] = confidence
    return probs


def refine_labels(image: np.ndarray, labels: np.ndarray, count: int, *,
                  confidence: float = 0.8, iterations: int = 5,
                  valid: np.ndarray | None = None) -> np.ndarray:
    """The labelling (0 = no concept, 1..count) after the CRF; computed on the `valid` part
    only (the photo inside its letterbox), the rest stays 0."""
    out = np.zeros_like(labels)
    if valid is None:
        valid = np.ones(labels.shape, bool)
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    if rows.size == 0:
        return out
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    probs = label_probabilities(labels[y0:y1, x0:x1], count, confidence)
    marginals = crf_probabilities(image[y0:y1, x0:x1], probs, iterations)
    out[y0:y1, x0:x1] = marginals.argmax(axis=0)
    return np.where(valid, out, 0).astype(labels.dtype)
