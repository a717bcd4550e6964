"""A 3-concept project for the dataset tests, made through the Project API only.

Photos are scikit-image's samples (cat, coffee cup, rocket), shrunk; masks are ellipses
(a stand-in for segmentation); the cat has two photos so the builder has a choice.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from engine.project import Layout, LayoutObject, Project

PHOTO_SIDE = 160


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def ellipse_mask(width: int, height: int, fill: float = 0.42) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    radius = ((xx - width / 2) / (width * fill)) ** 2 + ((yy - height / 2) / (height * fill)) ** 2
    return radius <= 1


def add_photo_with_cutout(project: Project, concept_id: int, rgb: np.ndarray, name: str,
                          side: int = PHOTO_SIDE) -> int:
    photo = Image.fromarray(rgb).convert("RGB")
    photo.thumbnail((side, side))
    data = _png(photo)
    rel = project.put_bytes(data, "png")
    record = project.add_photo(concept_id, rel, hashlib.sha256(data).hexdigest(), name,
                               photo.width, photo.height)
    mask = ellipse_mask(photo.width, photo.height)
    mask_image = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L")
    cutout = photo.convert("RGBA")
    cutout.putalpha(mask_image)
    cutout = cutout.crop(mask_image.getbbox())
    # An older mask of the same photo without a cut-out: the builder must skip it.
    project.add_mask(record.id, concept_id, project.put_bytes(_png(mask_image), "png"), "old")
    project.add_mask(record.id, concept_id, project.put_bytes(_png(mask_image), "png"),
                     "test-ellipse", cutout_file=project.put_bytes(_png(cutout), "png"))
    return record.id


def make_dataset_project(folder: Path, photo_side: int = PHOTO_SIDE) -> Path:
    """Concepts <mochi> cat (2 photos), <cup> mug, <rocket> rocket and three layouts."""
    from skimage import data

    with Project.create(folder, "Dataset test") as project:
        cat = project.add_concept("Mochi", "cat", token="<mochi>")
        cup = project.add_concept("Cup", "mug", token="<cup>")
        rocket = project.add_concept("Rocket", "rocket", token="<rocket>")
        chelsea = data.chelsea()
        add_photo_with_cutout(project, cat.id, chelsea, "chelsea.png", photo_side)
        add_photo_with_cutout(project, cat.id, chelsea[:, ::-1][20:, 30:].copy(),
                              "chelsea-2.png", photo_side)
        add_photo_with_cutout(project, cup.id, data.coffee(), "coffee.png", photo_side)
        add_photo_with_cutout(project, rocket.id, data.rocket(), "rocket.png", photo_side)
        project.add_layout(Layout(
            scene="on a wooden table in a sunlit kitchen", source="test", objects=(
                LayoutObject(cat.id, 0.03, 0.30, 0.34, 0.45, 0),
                LayoutObject(cup.id, 0.40, 0.40, 0.25, 0.30, 1),
                LayoutObject(rocket.id, 0.70, 0.10, 0.27, 0.75, 2))))
        project.add_layout(Layout(
            scene="a cosy living room", caption="A cat sits next to a toy rocket on a rug.",
            source="test", objects=(
                LayoutObject(rocket.id, 0.55, 0.05, 0.40, 0.85, 0),
                LayoutObject(cat.id, 0.05, 0.35, 0.45, 0.55, 1))))
        project.add_layout(Layout(
            scene="a garden", source="test", objects=(
                LayoutObject(cat.id, 0.10, 0.20, 0.50, 0.60, 0),
                LayoutObject(cup.id, 0.45, 0.45, 0.40, 0.45, 1))))
    return folder
