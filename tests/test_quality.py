"""Quality filter: visibility after occlusion, seams, CLIP similarity; reasons per failure."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.dataset.compose import Composition
from engine.dataset.quality import ClipJudge, QualityThresholds, assess, seam_scores
from engine.masks import dilate

SIZE = 64


def textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(128, 10, size=(SIZE, SIZE, 3)), 0, 255).astype(np.uint8)


def square_composition(pixels: np.ndarray, placed: int | None = None) -> Composition:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[20:40, 20:40] = True
    pixels[mask] = (30, 160, 60)
    return Composition(image=Image.fromarray(pixels), concept_masks={1: mask},
                       placed_area={1: placed or int(mask.sum())}, keep_mask=mask.copy())


def test_clean_item_is_kept_with_scores():
    comp = square_composition(textured())
    report = assess(comp, comp.image, {1: "<mochi>"})
    assert report.kept and report.review_state == "auto-kept" and report.reasons_text == ""
    assert report.scores["visible:1"] == 1.0
    assert report.scores["seam-edges:1"] < 2.0
    assert report.scores["seam-colour:1"] < 20.0
    assert "clip:1" not in report.scores  # no CLIP model given


def test_hidden_concept_is_rejected_with_its_name():
    comp = square_composition(textured(), placed=2000)  # 400 of 2000 pixels still visible
    report = assess(comp, comp.image, {1: "<mochi>"})
    assert report.review_state == "auto-rejected"
    assert report.reasons == ("<mochi> is mostly hidden (20% visible, 9.8% of the picture)",)
    tiny = square_composition(textured())
    report = assess(tiny, tiny.image, {1: "<mochi>"}, QualityThresholds(min_visible_area=0.2))
    assert "mostly hidden" in report.reasons_text


def test_halo_around_the_object_is_a_seam():
    pixels = textured()
    comp = square_composition(pixels)
    ring = dilate(comp.keep_mask, 4) & ~dilate(comp.keep_mask, 2)
    halo = pixels.copy()
    halo[ring] = 250
    edges, colour = seam_scores(halo, comp, 1, width=2)
    clean_edges, clean_colour = seam_scores(pixels, comp, 1, width=2)
    assert edges > 3 * clean_edges and colour > 100 > clean_colour
    report = assess(comp, Image.fromarray(halo), {1: "<cup>"})
    assert report.reasons == (f"visible seam around <cup> (edges {edges:.1f}x the background)",)


def test_colour_fringe_without_edges_is_caught_by_the_colour_test():
    pixels = textured()
    comp = square_composition(pixels)
    fringe = pixels.astype(np.int16)
    near = dilate(comp.keep_mask, 4) & ~dilate(comp.keep_mask, 2)
    fringe[near] += (90, 90, 90)
    image = Image.fromarray(np.clip(fringe, 0, 255).astype(np.uint8))
    report = assess(comp, image, {1: "<cup>"}, QualityThresholds(max_seam_edges=100.0))
    assert len(report.reasons) == 1 and report.reasons[0].startswith("colour fringe around <cup>")


def test_clip_judge_scores_crops_against_the_concepts_cutouts(tiny_models):
    from engine.models.loaders import load_clip

    model, preprocess, _tokenizer = load_clip(tiny_models["clip"])
    judge = ClipJudge(model, preprocess)
    comp = square_composition(textured())
    cutout = comp.image.crop((20, 20, 40, 40))
    judge.add_references(1, [cutout])
    assert judge.similarity(1, cutout) == pytest.approx(1.0, abs=1e-4)
    assert judge.similarity(2, cutout) is None  # no references: no score
    report = assess(comp, comp.image, {1: "<mochi>"}, judge=judge)
    assert report.kept and report.scores["clip:1"] == pytest.approx(1.0, abs=1e-3)
    strict = assess(comp, comp.image, {1: "<mochi>"}, QualityThresholds(min_clip_similarity=1.5),
                    judge=judge)
    assert strict.reasons[0].startswith("<mochi> does not look like its photos (CLIP similarity")
