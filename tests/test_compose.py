"""Composition: boxes, aspect ratio, z-order, occlusion-aware masks, seeded augmentation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.dataset.compose import (
    NO_AUGMENTATION,
    Cutout,
    box_pixels,
    compose,
    concept_cutout_masks,
    load_cutout,
)
from engine.errors import InputError
from engine.masks import dilate, erode, mask_box
from engine.project import Layout, LayoutObject, Project


def solid_cutout(concept_id: int, colour: tuple[int, int, int], size: tuple[int, int],
                 ellipse: bool = False) -> Cutout:
    width, height = size
    rgba = np.zeros((height, width, 4), dtype=np.uint8)
    rgba[..., :3] = colour
    # A gradient, so a flipped or rotated paste differs from the original.
    rgba[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    alpha = np.full((height, width), 255, dtype=np.uint8)
    if ellipse:
        yy, xx = np.mgrid[:height, :width]
        inside = ((xx - width / 2) / (width / 2)) ** 2 + ((yy - height / 2) / (height / 2)) ** 2
        alpha[inside > 1] = 0
    rgba[..., 3] = alpha
    return Cutout(concept_id, 10 + concept_id, 20 + concept_id, Image.fromarray(rgba, "RGBA"))


CUTOUTS = {1: solid_cutout(1, (0, 200, 0), (60, 30)), 2: solid_cutout(2, (0, 0, 200), (20, 50)),
           3: solid_cutout(3, (0, 250, 250), (40, 40), ellipse=True)}
LAYOUT = Layout(id=7, scene="a kitchen", objects=(
    LayoutObject(1, 0.05, 0.10, 0.40, 0.30, 0),
    LayoutObject(2, 0.60, 0.05, 0.30, 0.60, 1),
    LayoutObject(3, 0.10, 0.55, 0.35, 0.40, 2),
))


def test_each_mask_lies_inside_its_box_and_keeps_the_aspect_ratio():
    for seed in range(6):
        comp = compose(LAYOUT, CUTOUTS, 128, seed)
        assert comp.image.size == (128, 128) and comp.image.mode == "RGB"
        for obj, placement in zip(LAYOUT.objects, comp.placements, strict=True):
            x0, y0, x1, y1 = box_pixels(obj, 128)
            mx0, my0, mx1, my1 = mask_box(comp.concept_masks[obj.concept_id])
            assert x0 <= mx0 and y0 <= my0 and mx1 <= x1 and my1 <= y1
            assert placement.layout_box == (x0, y0, x1, y1)
            assert placement.object_box == (mx0, my0, mx1, my1)
        # Without rotation the 2:1 cut-out stays 2:1 (to a pixel).
        flat = compose(LAYOUT, CUTOUTS, 128, seed, augmentation=NO_AUGMENTATION)
        x0, y0, x1, y1 = mask_box(flat.concept_masks[1])
        assert abs((x1 - x0) / (y1 - y0) - 2.0) < 0.1


def test_without_augmentation_the_pasted_pixels_are_the_resized_cutout():
    comp = compose(LAYOUT, CUTOUTS, 128, 0, augmentation=NO_AUGMENTATION)
    pixels = np.asarray(comp.image)
    x0, y0, x1, y1 = mask_box(comp.concept_masks[2])
    expected = CUTOUTS[2].image.convert("RGBa").resize(
        (x1 - x0, y1 - y0), Image.Resampling.LANCZOS).convert("RGBA")
    inside = comp.concept_masks[2][y0:y1, x0:x1]
    assert np.array_equal(pixels[y0:y1, x0:x1][inside], np.asarray(expected)[..., :3][inside])
    # Centred in its box, as large as fits.
    bx0, by0, bx1, by1 = box_pixels(LAYOUT.objects[1], 128)
    assert x1 - x0 == bx1 - bx0 or y1 - y0 == by1 - by0


def test_higher_z_hides_lower_and_keep_is_the_union():
    overlap = Layout(id=1, scene="", objects=(
        LayoutObject(1, 0.0, 0.0, 0.7, 0.7, 0), LayoutObject(2, 0.3, 0.3, 0.7, 0.7, 1)))
    cutouts = {1: solid_cutout(1, (0, 200, 0), (40, 40)), 2: solid_cutout(2, (0, 0, 200), (40, 40))}
    comp = compose(overlap, cutouts, 64, 0, augmentation=NO_AUGMENTATION)
    low, high = comp.concept_masks[1], comp.concept_masks[2]
    assert not (low & high).any()
    assert np.array_equal(comp.keep_mask, low | high)
    assert comp.placed_area[1] > low.sum()  # the top object took part of it
    assert comp.placed_area[2] == high.sum()
    pixels = np.asarray(comp.image)
    assert (pixels[high][:, 2] == 200).all()  # the top object's colour wins where they meet
    # The z values decide, not the order in the layout.
    swapped = Layout(id=2, scene="", objects=(
        LayoutObject(2, 0.3, 0.3, 0.7, 0.7, 1), LayoutObject(1, 0.0, 0.0, 0.7, 0.7, 0)))
    again = compose(swapped, cutouts, 64, 0, augmentation=NO_AUGMENTATION)
    assert np.array_equal(again.concept_masks[2], high)


def test_augmentation_is_seeded_and_varies_across_seeds():
    first = compose(LAYOUT, CUTOUTS, 96, 3)
    second = compose(LAYOUT, CUTOUTS, 96, 3)
    assert np.array_equal(np.asarray(first.image), np.asarray(second.image))
    assert first.placements == second.placements
    runs = [compose(LAYOUT, CUTOUTS, 96, seed).placements for seed in range(12)]
    assert {p[0].flip for p in runs} == {True, False}
    angles = [p[0].angle for p in runs]
    assert all(abs(a) <= 8.0 for a in angles) and len(set(angles)) == 12
    assert len({p[1].object_box for p in runs}) > 3  # scale and shift vary


def test_background_photo_is_used_outside_the_objects():
    photo = Image.new("RGB", (300, 200), (250, 10, 10))
    comp = compose(LAYOUT, CUTOUTS, 64, 0, background=photo)
    outside = np.asarray(comp.image)[~comp.keep_mask]
    assert (outside == (250, 10, 10)).all()


def test_bad_inputs_are_clear_errors():
    with pytest.raises(InputError, match="no objects"):
        compose(Layout(id=3, scene="x"), CUTOUTS, 64, 0)
    with pytest.raises(InputError, match=r"needs cut-outs of concepts \[3\]"):
        compose(LAYOUT, {1: CUTOUTS[1], 2: CUTOUTS[2]}, 64, 0)


def test_dilate_and_erode():
    mask = np.zeros((9, 9), dtype=bool)
    mask[4, 4] = True
    grown = dilate(mask, 2)
    assert grown.sum() == 25 and mask_box(grown) == (2, 2, 7, 7)
    assert np.array_equal(erode(grown, 2), mask)
    assert not erode(mask, 1).any()
    assert mask_box(np.zeros((3, 3), dtype=bool)) is None


def test_cutouts_of_a_concept_are_the_newest_with_a_cutout_per_photo(tmp_path):
    from dataset_project import make_dataset_project

    make_dataset_project(tmp_path / "p", photo_side=48)
    with Project.open(tmp_path / "p") as project:
        cat = project.concept_by_name("Mochi")
        masks = concept_cutout_masks(project, cat.id)
        assert [m.method for m in masks] == ["test-ellipse", "test-ellipse"]
        assert len({m.photo_id for m in masks}) == 2
        cutout = load_cutout(project, masks[0])
        assert cutout.image.mode == "RGBA" and cutout.concept_id == cat.id
        assert cutout.image.getchannel("A").getbbox() == (0, 0, *cutout.image.size)
        no_cutout = project.masks(concept_id=cat.id)[0]
        with pytest.raises(InputError, match="no cut-out"):
            load_cutout(project, no_cutout)
