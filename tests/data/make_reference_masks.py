"""Make the reference masks of scikit-image's cat, coffee cup, rocket and astronaut photos
(run once).

    python tests/data/make_reference_masks.py            # writes tests/data/reference_masks/
    python tests/data/make_reference_masks.py --overlay  # also writes overlays to check by eye

The segmentation benchmark scores masks against these. They are made by hand, with the help of
two classical tools that are *not* what the app's fallback uses (GrabCut), so the benchmark
does not reward a method for agreeing with itself:

* cat (chelsea, 451×300): the whole cat (head, ears, chest) against the blurred room. Markers
  drawn by hand — a polygon surely inside the cat, polygons surely in the background (top-left
  corner, the room on the right) — and a random walker on the Lab colours decides the band
  between them (about 15-40 px wide along the right cheek, where fur meets a blurred wall).
* coffee (600×400): cup, saucer and spoon as one object. The saucer rim, the cup's rim and the
  spoon's handle were read off 4× zoomed crops as boundary points; an ellipse fitted to the
  rim points (cv2.fitEllipse), the cup rim ellipse and the spoon polygon, shrunk by 6 px, are
  the foreground markers; everything 8 px outside their union is background; the random walker
  places the edge in that band.
* rocket (640×427): the launch vehicle only (fairing and first stage, nose at y≈127 to the
  top of the pad at y≈405), not the towers, the launch mount struts or the pad. Hand-checked
  thresholding: "not sky" (blue minus red below 30: the dusk sky is blue, the vehicle neutral
  grey to warm white) inside a hand-drawn corridor around the body, the connected part that
  contains the body's centre, closed by 3 px, holes filled.

* astronaut (512×512): the astronaut (hair, face, neck ring, suit) with the helmet she holds
  in front of her, not the flag, the shuttle model or its dark stand. Markers drawn by hand —
  polygons surely inside the head and the suit, a disc inside the helmet; polygons surely in
  the flag, the wall left and right of the head, the patch of wall between hair and neck ring,
  and the model with its stand — and the random walker decides the band between them (the
  first try put the wall patch beside the neck inside and missed the left shoulder's top: two
  markers added).

Each mask was checked by eye on its overlay (red = outside the mask) and the markers adjusted
until the edge followed the object; the PNGs in reference_masks/ are the result (L mode,
0 or 255). Re-running the script gives the same files.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent / "reference_masks"


def polygon_mask(shape: tuple[int, int], points: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.array(points, np.int32)], 1)
    return mask.astype(bool)


def random_walker_between(image: np.ndarray, fg: np.ndarray, bg: np.ndarray,
                          beta: float = 3000.0) -> np.ndarray:
    """Foreground where the random walker from the fg markers wins over the bg markers."""
    from skimage.color import rgb2lab
    from skimage.segmentation import random_walker

    lab = rgb2lab(image)
    lab = (lab - lab.mean(axis=(0, 1))) / lab.std(axis=(0, 1))
    labels = np.zeros(image.shape[:2], np.int32)
    labels[bg] = 2
    labels[fg] = 1
    with warnings.catch_warnings():  # its probability-range tolerance note is harmless here
        warnings.simplefilter("ignore", UserWarning)
        result = random_walker(lab, labels, beta=beta, mode="cg_j", channel_axis=-1)
    return result == 1


def main_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    if n <= 1:
        return mask
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    inverse = (~mask).astype(np.uint8)
    n, labels = cv2.connectedComponents(inverse, connectivity=4)
    out = mask.copy()
    border = set(np.unique(np.concatenate(
        [labels[0], labels[-1], labels[:, 0], labels[:, -1]])).tolist())
    for label in range(1, n):
        if label not in border:
            out[labels == label] = True
    return out


def cat_mask(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    fg = polygon_mask((h, w), [
        (60, 3), (386, 3), (368, 32), (352, 52), (340, 100), (332, 150), (325, 200), (315, 250),
        (305, 297), (3, 297), (3, 140), (42, 118), (42, 60),
    ])
    bg = polygon_mask((h, w), [(0, 0), (22, 0), (22, 100), (0, 112)]) | polygon_mask((h, w), [
        (406, 0), (450, 0), (450, 299), (362, 299), (362, 220), (366, 150), (369, 110),
        (374, 75), (386, 45), (401, 15),
    ])
    return fill_holes(main_component(random_walker_between(image, fg, bg)))


# Boundary points of the saucer's outer rim, read off 4× zoomed crops (x, y).
SAUCER_RIM = [
    (167, 65), (135, 87), (100, 122), (85, 165), (79, 210), (80, 250), (97, 292), (122, 325),
    (160, 350), (200, 370), (250, 385), (300, 390), (345, 380), (380, 370), (410, 352),
    (440, 330), (460, 300), (472, 267), (479, 230), (479, 220), (475, 190), (460, 155),
    (440, 125), (417, 107),
]
CUP_RIM = ((290, 112), (236, 188))  # centre, full axes of the cup's top rim ellipse
SPOON_HANDLE = [(402, 70), (410, 66), (420, 67), (424, 75), (418, 100), (412, 120),
                (405, 125), (400, 105)]


def coffee_mask(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    saucer = np.zeros((h, w), np.uint8)
    cv2.ellipse(saucer, cv2.fitEllipse(np.array(SAUCER_RIM, np.float32)), 1, -1)
    cup = np.zeros((h, w), np.uint8)
    cv2.ellipse(cup, (CUP_RIM[0], CUP_RIM[1], 0.0), 1, -1)
    spoon = polygon_mask((h, w), SPOON_HANDLE).astype(np.uint8)
    union = saucer | cup | spoon
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (13, 13))
    fg = cv2.erode(saucer | cup, disk).astype(bool)
    fg |= cv2.erode(spoon, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))).astype(bool)
    bg = ~cv2.dilate(union, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))).astype(bool)
    return fill_holes(main_component(random_walker_between(image, fg, bg)))


ROCKET_CORRIDOR = [(313, 120), (330, 120), (336, 175), (336, 405), (307, 405), (307, 175)]


def rocket_mask(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    rgb = image.astype(np.int32)
    # The dusk sky is blue (blue − red ≈ 40-60); the vehicle is neutral grey to warm white.
    not_sky = (rgb[..., 2] - rgb[..., 0]) < 30
    candidate = not_sky & polygon_mask((h, w), ROCKET_CORRIDOR)
    _, labels = cv2.connectedComponents(candidate.astype(np.uint8), connectivity=8)
    body = labels == labels[260, 321]
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    return fill_holes(cv2.morphologyEx(body.astype(np.uint8), cv2.MORPH_CLOSE, disk) > 0)


def astronaut_mask(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    head = polygon_mask((h, w), [(190, 40), (268, 36), (288, 80), (272, 140), (240, 172),
                                 (202, 168), (182, 130), (168, 85)])
    suit = polygon_mask((h, w), [(48, 300), (70, 264), (100, 234), (118, 220), (135, 215),
                                 (290, 225), (330, 290), (342, 340), (300, 375), (268, 505),
                                 (42, 505), (38, 330)])
    helmet = np.zeros((h, w), np.uint8)
    cv2.circle(helmet, (392, 434), 92, 1, -1)
    fg = head | suit | helmet.astype(bool)
    bg = (polygon_mask((h, w), [(0, 0), (100, 0), (108, 150), (80, 200), (45, 235), (22, 280),
                                (12, 330), (8, 511), (0, 511)])  # the flag
          | polygon_mask((h, w), [(100, 0), (165, 0), (150, 50), (140, 110), (112, 165)])
          | polygon_mask((h, w), [(300, 0), (372, 0), (366, 150), (356, 262), (332, 246),
                                  (314, 188), (308, 124), (304, 66)])
          | polygon_mask((h, w), [(268, 158), (283, 134), (290, 130), (294, 165), (272, 170)])
          | polygon_mask((h, w), [(372, 0), (511, 0), (511, 335), (470, 340), (372, 328)]))
    return fill_holes(main_component(random_walker_between(image, fg, bg)))


PHOTOS = {"cat": ("chelsea", cat_mask), "coffee": ("coffee", coffee_mask),
          "rocket": ("rocket", rocket_mask), "astronaut": ("astronaut", astronaut_mask)}


def reference_image(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, PHOTOS[name][0])()


def overlay(image: np.ndarray, mask: np.ndarray) -> Image.Image:
    shown = image.astype(np.float32)
    shown[~mask] = shown[~mask] * 0.45 + np.array([255, 0, 0]) * 0.55
    edge = mask ^ cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    shown[edge] = (0, 255, 0)
    return Image.fromarray(shown.astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overlay", type=Path, nargs="?", const=OUT / "overlays",
                        help="also write overlays (default folder: reference_masks/overlays)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (_, make) in PHOTOS.items():
        image = reference_image(name)
        mask = make(image)
        Image.fromarray((mask * 255).astype(np.uint8), "L").save(OUT / f"{name}.png",
                                                                 optimize=True)
        print(f"{name}: {mask.mean() * 100:.1f}% of the photo")
        if args.overlay:
            args.overlay.mkdir(parents=True, exist_ok=True)
            overlay(image, mask).save(args.overlay / f"{name}.png")


if __name__ == "__main__":
    main()
