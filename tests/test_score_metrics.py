"""The metrics with known answers (engine/score/metrics.py defines them).

With the tiny random models the numbers mean nothing, so these tests check the algebra: a
crop that is the reference scores 1, a missing detection scores 0, TI-CLIP is the cosine the
definition names, shared class words hand each box to one concept only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.models import loaders
from engine.project import Project
from engine.score.definitions import CLIPSCORE_WEIGHT, DEFAULT_THRESHOLD
from engine.score.detection import OwlDetector, detector_query, pad_to_square
from engine.score.embedding import ClipEmbedder, on_grey_square
from engine.score.metrics import (
    ConceptWord,
    assign_greedy,
    cd_text,
    crop_corners,
    mean_similarity,
    plain_prompt,
)
from engine.score.scorer import Picture, ReferenceBank, Scorer

from scoring_project import add_picture, picture, png  # isort: skip
from dataset_project import make_dataset_project  # isort: skip

MOCHI = ConceptWord(1, "<mochi>", "cat")
CUP = ConceptWord(2, "<cup>", "mug")


# --------------------------------------------------------------------------- pure algebra


@pytest.mark.parametrize("prompt, plain", [
    ("a photo of <mochi> cat and <cup> mug", "a photo of cat and mug"),
    ("<mochi> on a sofa", "cat on a sofa"),
    ("<mochi> Cat in the rain", "Cat in the rain"),
    ("<composition> a photo of <mochi> cat and <cup> mug, <mochi> cat, <cup> mug. "
     "background: a sunlit kitchen",
     "a photo of cat and mug, cat, mug. background: a sunlit kitchen"),
    ("a cat <mochi>, alone", "a cat cat, alone"),
    ("no tokens here", "no tokens here"),
])
def test_plain_prompt_replaces_tokens_by_class_words(prompt, plain):
    assert plain_prompt(prompt, [MOCHI, CUP]) == plain


def test_greedy_assignment_takes_the_best_pair_first_and_each_box_once():
    # Greedy, as defined: (concept 0, box 0) = 0.9 goes first, although giving box 1 to
    # concept 0 and box 0 to concept 1 would add up to more.
    assert assign_greedy(np.array([[0.9, 0.8], [0.85, 0.1]])) == [0, 1]
    assert assign_greedy(np.array([[0.2, 0.7], [0.3, 0.6]])) == [1, 0]
    # Three concepts share two boxes: the one whose best pair comes last gets none.
    assert assign_greedy(np.array([[0.5, 0.4], [0.9, 0.1], [0.2, 0.8]])) == [None, 0, 1]
    assert assign_greedy(np.zeros((2, 0))) == [None, None]


def test_mean_similarity_cd_text_and_crop_corners():
    refs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert mean_similarity(np.array([1.0, 0.0]), refs) == pytest.approx(0.5)
    assert cd_text(0.31) == pytest.approx(CLIPSCORE_WEIGHT * 0.31)
    assert cd_text(-0.2) == 0.0
    assert crop_corners((1.2, 2.7, 10.1, 11.0), 64, 64) == (1, 2, 11, 11)
    assert crop_corners((-3.0, 60.5, 70.0, 80.0), 64, 64) == (0, 60, 64, 64)
    assert crop_corners((10.0, 10.0, 10.0, 20.0), 64, 64) is None
    assert DEFAULT_THRESHOLD == 0.1


# --------------------------------------------------------------------------- tiny models


@pytest.fixture(scope="module")
def models(tiny_models):
    model, preprocess, tokenizer = loaders.load_clip(tiny_models["clip"])
    owl, processor = loaders.load_detector(tiny_models["detector"])
    return ClipEmbedder(model, preprocess, tokenizer), OwlDetector(owl, processor)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_dataset_project(tmp_path / "project", photo_side=64)


def _only_cutout(proj: Project, concept_id: int, image: Image.Image) -> None:
    """Make `image` (opaque) the concept's only reference cut-out."""
    photo = proj.photos(concept_id)[0]
    for other in proj.photos(concept_id)[1:]:
        proj.delete_photo(other.id)
    mask_rel = proj.put_bytes(png(Image.new("L", image.size, 255)), "png")
    proj.add_mask(photo.id, concept_id, mask_rel, "test",
                  cutout_file=proj.put_bytes(png(image.convert("RGBA")), "png"))


def _words(proj: Project) -> dict[str, ConceptWord]:
    return {c.token: ConceptWord(c.id, c.token, c.class_word) for c in proj.concepts()}


def test_a_crop_that_is_the_reference_scores_one(project, models):
    embedder, detector = models
    with Project.open(project) as proj:
        w = _words(proj)
        image = picture(proj, [(w["<mochi>"].concept_id, (0.1, 0.2, 0.5, 0.5))], seed=5)
        best = detector.detect([image], [["cat"]], DEFAULT_THRESHOLD)[0]["cat"][0]
        crop = image.crop(crop_corners(best.box, *image.size))
        _only_cutout(proj, w["<mochi>"].concept_id, crop)
        scorer = Scorer(embedder, detector, ReferenceBank(proj, embedder), DEFAULT_THRESHOLD)
        [result] = scorer.score([Picture(1, image, "<mochi> cat on grass", (w["<mochi>"],))])
    [mochi] = result.concepts
    assert mochi.cp_clip == pytest.approx(1.0, abs=1e-5)
    assert result.cp_clip == pytest.approx(1.0, abs=1e-5)
    assert mochi.confidence == pytest.approx(best.confidence)
    x0, y0, x1, y1 = best.box
    assert mochi.box == pytest.approx((x0 / 64, y0 / 64, (x1 - x0) / 64, (y1 - y0) / 64))
    assert mochi.details["references"] == 1 and mochi.details["reference_kind"] == "cut-outs"
    assert mochi.details["query"] == detector_query("cat") == "a photo of a cat"


def test_with_two_references_the_score_is_their_mean(project, models):
    embedder, detector = models
    with Project.open(project) as proj:
        w = _words(proj)
        image = picture(proj, [(w["<mochi>"].concept_id, (0.2, 0.2, 0.5, 0.6))], seed=6)
        best = detector.detect([image], [["cat"]], DEFAULT_THRESHOLD)[0]["cat"][0]
        crop = image.crop(crop_corners(best.box, *image.size))
        other = Image.fromarray(np.full((40, 48, 3), (200, 40, 90), np.uint8))
        _only_cutout(proj, w["<mochi>"].concept_id, crop)
        photo2 = proj.add_photo(w["<mochi>"].concept_id, proj.put_bytes(png(other), "png"),
                                "0" * 64, "other.png", 48, 40)
        proj.add_mask(photo2.id, w["<mochi>"].concept_id,
                      proj.put_bytes(png(Image.new("L", (48, 40), 255)), "png"), "test",
                      cutout_file=proj.put_bytes(png(other.convert("RGBA")), "png"))
        scorer = Scorer(embedder, detector, ReferenceBank(proj, embedder), DEFAULT_THRESHOLD)
        [result] = scorer.score([Picture(1, image, "<mochi> cat", (w["<mochi>"],))])
    crop_row, other_row = embedder.crops([crop, other])
    assert result.concepts[0].cp_clip == pytest.approx((1.0 + crop_row @ other_row) / 2,
                                                       abs=1e-5)


class _Missing(OwlDetector):
    """The real tiny detector, with the boxes of some class words taken away: the random
    tiny OWL-ViT is saturated (confidence 1.0 almost everywhere), so no threshold can make
    it miss a class word."""

    def __init__(self, real: OwlDetector, missing: set[str], keep: int | None = None) -> None:
        super().__init__(real.model, real.processor, real.device)
        self.missing, self.keep = missing, keep

    def detect(self, images, words, threshold):
        found = super().detect(images, words, threshold)
        return [{w: ([] if w in self.missing else ds[:self.keep]) for w, ds in f.items()}
                for f in found]


def test_a_concept_not_detected_scores_zero_and_counts_in_the_mean(project, models):
    embedder, detector = models
    with Project.open(project) as proj:
        w = _words(proj)
        image = picture(proj, [(w["<mochi>"].concept_id, (0.1, 0.1, 0.4, 0.4)),
                               (w["<cup>"].concept_id, (0.5, 0.5, 0.4, 0.4))], seed=7)
        scorer = Scorer(embedder, _Missing(detector, {"mug"}), ReferenceBank(proj, embedder),
                        DEFAULT_THRESHOLD)
        [result] = scorer.score([Picture(1, image, "<mochi> cat and <cup> mug",
                                         (w["<mochi>"], w["<cup>"]))])
    mochi, cup = result.concepts
    assert cup.cp_clip == 0.0 and cup.box is None and cup.confidence is None
    assert cup.cd_image is not None  # the whole-picture alignment needs no detection
    assert mochi.box is not None
    assert result.cp_clip == pytest.approx((mochi.cp_clip + 0.0) / 2)
    rows = result.rows("test", True, DEFAULT_THRESHOLD)
    cup_row = next(r for r in rows if r.metric == "cp-clip" and r.concept_id == cup.concept_id)
    assert cup_row.value == 0.0 and cup_row.box is None and cup_row.test_model


def _clip_cos(embedder: ClipEmbedder, image: Image.Image, text: str) -> float:
    """TI-CLIP by its definition, straight from the open_clip model."""
    model = embedder.model
    with torch.no_grad():
        i = model.encode_image(embedder.preprocess(image).unsqueeze(0))[0].double()
        t = model.encode_text(embedder.tokenizer([text]))[0].double()
    return float(i @ t / (i.norm() * t.norm()))


def test_ti_clip_is_the_cosine_with_the_plain_prompt(project, models):
    embedder, detector = models
    with Project.open(project) as proj:
        w = _words(proj)
        image = picture(proj, [(w["<mochi>"].concept_id, (0.1, 0.2, 0.6, 0.6))], seed=8)
        scorer = Scorer(embedder, detector, ReferenceBank(proj, embedder), DEFAULT_THRESHOLD)
        own, plain, foreign = scorer.score([
            Picture(1, image, "a photo of <mochi> cat on the grass", (w["<mochi>"],)),
            Picture(2, image, "a photo of cat on the grass", ()),
            Picture(3, image, "a red rocket flying over the sea", ())])
    assert own.plain_prompt == "a photo of cat on the grass"
    assert own.ti_clip == pytest.approx(_clip_cos(embedder, image, own.plain_prompt), abs=1e-5)
    assert own.ti_clip == pytest.approx(plain.ti_clip, abs=1e-6)  # the token is gone
    assert foreign.ti_clip == pytest.approx(
        _clip_cos(embedder, image, "a red rocket flying over the sea"), abs=1e-5)
    assert foreign.ti_clip != pytest.approx(own.ti_clip, abs=1e-4)
    # The raw prompt, token and all, would have given another number.
    assert own.ti_clip != pytest.approx(
        _clip_cos(embedder, image, "a photo of <mochi> cat on the grass"), abs=1e-4)
    assert own.cd_text == pytest.approx(2.5 * max(0.0, own.ti_clip))
    assert plain.cp_clip is None and plain.concepts == ()  # no concept, no CP-CLIP


def test_shared_class_words_assign_each_box_once(project, models):
    embedder, detector = models
    with Project.open(project) as proj:
        tom = proj.add_concept("Tom", "cat", token="<tom>")
        mochi_id = proj.concept_by_name("Mochi").id
        flipped = Image.fromarray(np.asarray(_cutout(proj, mochi_id))[:, ::-1, :].copy())
        tinted = Image.merge("RGBA", (*flipped.split()[:3][::-1], flipped.split()[3]))
        photo = proj.add_photo(tom.id, proj.put_bytes(png(tinted.convert("RGB")), "png"),
                               "1" * 64, "tom.png", *tinted.size)
        proj.add_mask(photo.id, tom.id, proj.put_bytes(png(tinted.getchannel("A")), "png"),
                      "test", cutout_file=proj.put_bytes(png(tinted), "png"))
        w = _words(proj)
        cats = (w["<mochi>"], w["<tom>"])
        image = picture(proj, [(mochi_id, (0.05, 0.2, 0.4, 0.5)),
                               (tom.id, (0.55, 0.2, 0.4, 0.5))], seed=9)
        bank = ReferenceBank(proj, embedder)
        [result] = Scorer(embedder, detector, bank, DEFAULT_THRESHOLD).score(
            [Picture(1, image, "<mochi> cat and <tom> cat", cats)])
        # The expected answer, worked out by hand from the same detections and embeddings.
        boxes = detector.detect([image], [["cat", "cat"]], DEFAULT_THRESHOLD)[0]["cat"][:2]
        crops = embedder.crops([image.crop(crop_corners(b.box, 64, 64)) for b in boxes])
        sim = np.array([[float(np.mean(bank.of(c.concept_id).embeddings @ row))
                         for row in crops] for c in cats])
        [[r0, c0]] = np.argwhere(sim == sim.max())
        expected = {int(r0): int(c0), 1 - int(r0): 1 - int(c0)}
        # With one box for the two cats, the one that matches it better takes it.
        [single] = Scorer(embedder, _Missing(detector, set(), keep=1), bank,
                          DEFAULT_THRESHOLD).score([Picture(1, image, "two cats", cats)])
    assert len(boxes) == 2
    got = [c.box for c in result.concepts]
    assert got[0] != got[1]
    for m, concept in enumerate(result.concepts):
        k = expected[m]
        x0, y0, x1, y1 = boxes[k].box
        assert concept.box == pytest.approx((x0 / 64, y0 / 64, (x1 - x0) / 64, (y1 - y0) / 64))
        assert concept.cp_clip == pytest.approx(sim[m, k], abs=1e-6)
        assert concept.details["candidates"] == 2
    winner = int(np.argmax(sim[:, 0]))
    assert single.concepts[winner].cp_clip == pytest.approx(sim[winner, 0], abs=1e-6)
    assert single.concepts[1 - winner].cp_clip == 0.0
    assert single.concepts[1 - winner].box is None


def _cutout(proj: Project, concept_id: int) -> Image.Image:
    from scoring_project import cutout_of

    return cutout_of(proj, concept_id)


def test_detector_boxes_map_back_to_the_picture_and_are_suppressed(models):
    _embedder, detector = models
    wide = Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 64, 3), np.uint8))
    assert pad_to_square(wide).size == (64, 64)
    [found] = detector.detect([wide], [["cat"]], 0.0)
    boxes = [d.box for d in found["cat"]]
    assert boxes and all(0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 40 for x0, y0, x1, y1 in boxes)
    confidences = [d.confidence for d in found["cat"]]
    assert confidences == sorted(confidences, reverse=True)
    from torchvision.ops import box_iou

    iou = box_iou(torch.tensor(boxes), torch.tensor(boxes)).fill_diagonal_(0)
    assert float(iou.max()) <= 0.5 + 1e-6  # non-maximum suppression at IoU 0.5
    # A batch gives each picture the boxes it would get alone.
    other = Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), np.uint8))
    together = detector.detect([wide, other], [["cat"], ["mug"]], 0.0)
    def rounded(found_boxes):
        return sorted(tuple(round(v, 2) for v in b) for b in found_boxes)

    assert rounded(d.box for d in together[0]["cat"]) == rounded(boxes)


def test_crops_and_cutouts_are_prepared_alike(models):
    embedder, _ = models
    rgba = Image.new("RGBA", (10, 20), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (2, 2, 8, 18))
    square = on_grey_square(rgba)
    assert square.size == (20, 20) and square.getpixel((0, 0)) == (128, 128, 128)
    assert square.getpixel((10, 10)) == (255, 0, 0)
    flat = square.crop((5, 0, 15, 20))  # the same pixels, opaque
    a, b = embedder.crops([rgba, flat])
    assert float(a @ b) == pytest.approx(1.0, abs=1e-6)


def test_scores_rows_name_their_metrics(project, models):
    embedder, detector = models
    with Project.open(project) as proj:
        w = _words(proj)
        image = picture(proj, [(w["<mochi>"].concept_id, (0.1, 0.1, 0.5, 0.5))], seed=10)
        gen = add_picture(proj, "<mochi> cat", image)
        [result] = Scorer(embedder, detector, ReferenceBank(proj, embedder),
                          DEFAULT_THRESHOLD).score([Picture(gen.id, image, gen.prompt,
                                                            (w["<mochi>"],))])
        stored = proj.replace_scores(gen.id, result.rows("tiny: x", True, 0.1))
    kinds = sorted((s.metric, s.concept_id is None) for s in stored)
    assert kinds == [("cd-image", False), ("cd-image", True), ("cd-text", True),
                     ("cp-clip", False), ("cp-clip", True), ("ti-clip", True)]
    assert all(s.test_model and s.model == "tiny: x" and s.scored_at for s in stored)
