"""The E-step and the dense CRF on a picture whose truth is known: two scikit-image cut-outs
(the horse silhouette filled with the cat photo, a disc of the coffee photo) pasted on a
smooth noisy background."""

from __future__ import annotations

import numpy as np
import pytest

SIDE = 256


def cutout_scene(side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 [side, side, 3] picture, bool [2, side, side] true masks: horse, disc)."""
    from skimage import data, draw, transform

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side] / side
    picture = np.stack([90 + 60 * xx, 140 + 40 * yy, 110 + 30 * (1 - xx)], -1)
    picture = picture + rng.normal(0, 6, picture.shape)
    truth = np.zeros((2, side, side), bool)
    horse = transform.resize((~data.horse()).astype(float),
                             (int(side * 0.45), int(side * 0.55))) > 0.5
    cat = transform.resize(data.chelsea(), (*horse.shape, 3)) * 255
    y0, x0 = int(side * 0.3), int(side * 0.05)
    region = picture[y0:y0 + horse.shape[0], x0:x0 + horse.shape[1]]
    region[horse] = cat[horse]
    truth[0, y0:y0 + horse.shape[0], x0:x0 + horse.shape[1]] = horse
    rr, cc = draw.disk((int(side * 0.55), int(side * 0.75)), int(side * 0.2),
                       shape=(side, side))
    coffee = transform.resize(data.coffee(), (side, side, 3)) * 255
    picture[rr, cc] = coffee[rr, cc]
    truth[1, rr, cc] = True
    truth[0] &= ~truth[1]
    return np.clip(picture, 0, 255).astype(np.uint8), truth


def planted_attention(truth: np.ndarray, side: int = 16, seed: int = 1) -> np.ndarray:
    """What a token that learned its concept attends to: its true mask at 16×16 (the part of
    each cell it covers) over a floor, with noise."""
    import cv2

    rng = np.random.default_rng(seed)
    small = np.stack([cv2.resize(t.astype(np.float32), (side, side),
                                 interpolation=cv2.INTER_AREA) for t in truth])
    return 0.2 + 0.8 * small + rng.normal(0, 0.05, small.shape)


def _ious(masks: np.ndarray, truth: np.ndarray) -> list[float]:
    from engine.masks import mask_iou

    return [mask_iou(m, t) for m, t in zip(masks, truth, strict=True)]


def test_the_e_step_moves_wrong_masks_to_the_truth_deterministically():
    from engine.extract.estep import MaskSettings, converged, estimate_masks, mask_changes

    picture, truth = cutout_scene()
    attention = planted_attention(truth)
    valid = np.ones((SIDE, SIDE), bool)
    halves = np.zeros((2, SIDE, SIDE), bool)
    halves[0, :, :SIDE // 2], halves[1, :, SIDE // 2:] = True, True
    assert max(_ious(halves, truth)) < 0.3  # deliberately wrong: two halves of the picture

    def iterate() -> list[np.ndarray]:
        masks, out = halves, []
        for _ in range(3):
            masks = estimate_masks(attention, picture, valid, MaskSettings(), previous=masks)
            out.append(masks)
        return out

    history = iterate()
    for masks in history:
        assert min(_ious(masks, truth)) >= 0.9, _ious(masks, truth)
        assert not (masks[0] & masks[1]).any()  # never two concepts on one pixel
    assert converged(mask_changes(history[-1], history[-2]), 0.95)
    again = iterate()
    assert all(np.array_equal(a, b) for a, b in zip(history, again, strict=True))


def test_the_crf_alone_raises_the_iou_of_a_blurred_mask():
    import cv2

    from engine.extract.crf import crf_probabilities, refine_labels
    from engine.masks import mask_iou

    picture, truth = cutout_scene()
    for k in range(2):
        soft = np.roll(cv2.GaussianBlur(truth[k].astype(np.float32), (0, 0), 6), 5, axis=1)
        blurred = soft >= 0.5
        refined = crf_probabilities(picture, np.stack([1 - soft, soft]), 5).argmax(0) == 1
        before, after = mask_iou(blurred, truth[k]), mask_iou(refined, truth[k])
        assert after >= before + 0.05 and after >= 0.95, (k, before, after)
    # The labelling form (what the E-step uses), on the picture's valid part only.
    labels = np.zeros((SIDE, SIDE), np.int32)
    for k in range(2):
        labels[np.roll(cv2.GaussianBlur(truth[k].astype(np.float32), (0, 0), 6), 5,
                       axis=1) >= 0.5] = k + 1
    valid = np.zeros((SIDE, SIDE), bool)
    valid[:, :SIDE - 8] = True
    out = refine_labels(picture, labels, 2, valid=valid)
    assert not out[~valid].any()
    before = [mask_iou(labels == k + 1, truth[k]) for k in range(2)]
    after = [mask_iou(out == k + 1, truth[k]) for k in range(2)]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


def test_without_the_crf_the_e_step_is_coarser():
    """The CRF is what snaps 16×16 attention to the cut-outs' edges."""
    from engine.extract.estep import MaskSettings, estimate_masks

    picture, truth = cutout_scene()
    attention = planted_attention(truth)
    valid = np.ones((SIDE, SIDE), bool)
    with_crf = estimate_masks(attention, picture, valid, MaskSettings())
    without = estimate_masks(attention, picture, valid, MaskSettings(crf_iterations=0))
    assert np.mean(_ious(with_crf, truth)) > np.mean(_ious(without, truth)) + 0.03


def test_given_masks_are_kept_and_the_rest_fills_around_them():
    from engine.extract.estep import MaskSettings, estimate_masks

    picture, truth = cutout_scene()
    attention = planted_attention(truth)
    valid = np.ones((SIDE, SIDE), bool)
    given = np.zeros((SIDE, SIDE), bool)
    given[60:200, 0:120] = True  # a rough box for the horse, kept as it is
    masks = estimate_masks(attention, picture, valid, MaskSettings(), kept={0: given})
    assert np.array_equal(masks[0], given)
    assert not (masks[1] & given).any()
    assert _ious(masks, truth)[1] >= 0.9


@pytest.mark.parametrize("count", [1, 3])
def test_an_empty_estimate_keeps_the_previous_mask(count):
    from engine.extract.estep import MaskSettings, estimate_masks

    side = 32
    picture = np.full((side, side, 3), 128, np.uint8)
    attention = np.zeros((count, 4, 4), np.float32)  # flat: nothing found anywhere
    previous = np.zeros((count, side, side), bool)
    for i in range(count):
        previous[i, 4:12, 4 + 8 * i:10 + 8 * i] = True
    masks = estimate_masks(attention, picture, np.ones((side, side), bool), MaskSettings(),
                           previous=previous)
    assert np.array_equal(masks, previous)
