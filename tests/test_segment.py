"""Segmentation: mask post-processing, the GrabCut fallback on real photos (IoU against the
hand-made reference masks), the SAM path with the tiny random SAM (shapes, embedding cache,
refinement through the prompt decoder only), multi-concept photos, the jobs and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.errors import Cancelled, InputError, ModelMissingError
from engine.intake.import_photos import import_photos
from engine.intake.photos import DecodedImage, load_photo
from engine.jobs import CancelToken, JobContext, JobLog, JobPreview, JobProgress, inline_context
from engine.masks import mask_box as mask_bbox
from engine.masks import mask_iou, mask_png, read_mask
from engine.project import Project
from engine.segment.cleanup import (
    clean_mask,
    feathered_alpha,
    fill_holes,
    keep_main_component,
    make_cutout,
)
from engine.segment.grabcut import GrabCutSegmenter
from engine.segment.jobs import SegmentParams, SegmentPromptsParams
from engine.segment.sam import (
    Prompt,
    SamSegmenter,
    foreground_score,
    load_segmenter_for,
    segment_concepts,
    segment_image,
)
from engine.segment.segment_photos import segment_job, segment_prompts_job

REPO = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).parent / "data" / "reference_masks"
SKIMAGE = {"cat": "chelsea", "coffee": "coffee", "rocket": "rocket"}
# Floors a little under what the fallback measures (benchmark: cat 0.85, coffee 0.89), so a
# regression fails while the float noise of OpenCV builds does not.
FALLBACK_AUTO_FLOOR = {"cat": 0.78, "coffee": 0.82}
USER_BOXES = {"cat": (0, 0, 400, 300), "coffee": (70, 10, 485, 395), "rocket": (300, 120, 345, 410)}


def photo_array(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, SKIMAGE[name])()


def decoded(array: np.ndarray) -> DecodedImage:
    return DecodedImage(Image.fromarray(array), None, "PNG")


def setup_for(profile: str, overrides: dict[str, str] | None = None):
    from engine.jobs.stage_setup import resolve_stage

    return resolve_stage(
        SegmentParams(project="unused", profile=profile, device="cpu", overrides=overrides or {})
    )


def reference(name: str) -> np.ndarray:
    return np.asarray(Image.open(REFERENCE / f"{name}.png")) >= 128


@pytest.fixture(scope="module")
def tiny_sam(tiny_models) -> SamSegmenter:
    segmenter = load_segmenter_for(setup_for("tiny"), "sam")
    assert isinstance(segmenter, SamSegmenter)
    return segmenter


@pytest.fixture
def project(tmp_path: Path):
    with Project.create(tmp_path / "proj", "Segmentation") as proj:
        yield proj


def save_photo(folder: Path, name: str, array: np.ndarray) -> Path:
    path = folder / f"{name}.png"
    Image.fromarray(array).save(path)
    return path


# --------------------------------------------------------------------------- post-processing


def disc(shape, centre, radius) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2


def test_main_component_is_kept_and_a_clicked_part_too():
    mask = disc((100, 100), (30, 30), 20) | disc((100, 100), (80, 80), 8)
    assert keep_main_component(mask).sum() == disc((100, 100), (30, 30), 20).sum()
    both = keep_main_component(mask, positive=[(80, 80)])
    assert both.sum() == mask.sum()


def test_holes_are_filled_unless_a_negative_click_opened_them():
    ring = disc((100, 100), (50, 50), 30) & ~disc((100, 100), (50, 50), 10)
    assert fill_holes(ring).sum() == disc((100, 100), (50, 50), 30).sum()
    assert fill_holes(ring, keep_open=[(50, 50)]).sum() == ring.sum()


def test_clean_mask_smooths_and_clips_to_the_box():
    rng = np.random.default_rng(0)
    noisy = disc((200, 200), (100, 100), 60) ^ (rng.random((200, 200)) < 0.02)
    cleaned = clean_mask(noisy)
    assert mask_iou(cleaned, disc((200, 200), (100, 100), 60)) > 0.97
    clipped = clean_mask(disc((200, 200), (100, 100), 60), box=(40, 40, 100, 160))
    assert mask_bbox(clipped)[2] <= 100 + 3


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.2, 0.8))
def test_a_cleaned_mask_is_one_piece_without_holes(seed, density):
    rng = np.random.default_rng(seed)
    blobs = rng.random((12, 16)) < density
    mask = np.kron(blobs, np.ones((5, 5), bool)) ^ (rng.random((60, 80)) < 0.05)
    cleaned = clean_mask(mask)
    if cleaned.any():
        import cv2

        assert cv2.connectedComponents(cleaned.astype(np.uint8), connectivity=8)[0] == 2
    assert np.array_equal(fill_holes(cleaned), cleaned)


def test_feathered_alpha_fades_inwards_only():
    mask = disc((120, 120), (60, 60), 40)
    alpha = feathered_alpha(mask, radius=4)
    assert (alpha[~mask] == 0).all()  # no fringe of the old background
    assert alpha[60, 60] == 255
    edge_values = alpha[60, 20:26]
    assert edge_values[0] < 128 and np.all(np.diff(edge_values.astype(int)) >= 0)


def test_cutout_is_cropped_and_keeps_the_photos_transparency():
    rgb = Image.new("RGB", (100, 80), (10, 200, 30))
    mask = np.zeros((80, 100), bool)
    mask[20:60, 30:90] = True
    photo_alpha = Image.new("L", (100, 80), 255)
    photo_alpha.paste(0, (30, 20, 60, 60))  # the left half of the object was transparent
    cut = make_cutout(rgb, mask, photo_alpha, feather=1)
    assert cut.mode == "RGBA" and cut.size == (60, 40)
    a = np.asarray(cut)[..., 3]
    assert a[20, 10] == 0 and a[20, 45] == 255
    with pytest.raises(ValueError):
        make_cutout(rgb, np.zeros((80, 100), bool))


def test_mask_png_is_an_l_image_that_reads_back():
    mask = disc((50, 70), (35, 25), 15)
    data = mask_png(mask)
    with Image.open(__import__("io").BytesIO(data)) as im:
        assert im.mode == "L" and im.size == (70, 50)
        assert set(np.unique(np.asarray(im)).tolist()) == {0, 255}
    assert np.array_equal(read_mask(data), mask)


def test_foreground_score_prefers_a_centred_object_to_the_background():
    centred = disc((100, 100), (50, 50), 25)
    assert foreground_score(centred, 0.9) > foreground_score(~centred, 0.9)
    assert foreground_score(np.zeros((10, 10), bool), 1.0) == 0.0


# --------------------------------------------------------------------------- fallback


@pytest.mark.parametrize("name", sorted(FALLBACK_AUTO_FLOOR))
def test_fallback_finds_the_object_of_a_close_up(name):
    result = segment_image(GrabCutSegmenter(), decoded(photo_array(name)), name)
    assert result.fallback and result.method == "fallback-grabcut"
    assert "fallback" in result.label.lower() and result.score is None
    assert mask_iou(result.mask, reference(name)) >= FALLBACK_AUTO_FLOOR[name]


@pytest.mark.parametrize("name", sorted(USER_BOXES))
def test_fallback_with_a_user_box(name):
    floor = {"cat": 0.9, "coffee": 0.93, "rocket": 0.65}[name]
    result = segment_image(
        GrabCutSegmenter(), decoded(photo_array(name)), name, Prompt(box=USER_BOXES[name])
    )
    assert result.method == "fallback-grabcut-refined"
    assert mask_iou(result.mask, reference(name)) >= floor


def test_fallback_refinement_respects_clicks():
    image = decoded(photo_array("coffee"))
    seg = GrabCutSegmenter()
    first = segment_image(seg, image, "coffee")
    # "not this": a click on the table right of the saucer; "this": on the spoon's bowl.
    refined = segment_image(
        seg,
        image,
        "coffee",
        Prompt(points=((560, 200), (365, 285)), labels=(0, 1)),
        previous_mask=first.mask,
    )
    assert not refined.mask[200, 560] and refined.mask[285, 365]


# --------------------------------------------------------------------------- SAM (tiny)


def test_tiny_sam_masks_have_the_photos_shape(tiny_sam):
    image = decoded(photo_array("cat"))
    result = segment_image(tiny_sam, image, "shape-test")
    assert result.mask.shape == (300, 451) and result.mask.dtype == bool
    assert result.method == "sam" and not result.fallback
    assert tiny_sam.test_model and "random weights" in result.label
    assert isinstance(result.score, float)


def test_decoding_matches_the_sam_predictor(tiny_sam):
    """Our decode path (upscaling only the kept mask) gives SamPredictor.predict's answer."""
    image = np.asarray(decoded(photo_array("coffee")).rgb)
    tiny_sam.embed(image, "predictor-check")
    point, box = np.array([[300.0, 200.0]]), np.array([70.0, 10.0, 485.0, 395.0])
    ours, our_score, our_low = tiny_sam.prompted(
        image, "predictor-check", [(300.0, 200.0)], [1], (70.0, 10.0, 485.0, 395.0)
    )
    masks, scores, low = tiny_sam.predictor.predict(
        point_coords=point,
        point_labels=np.array([1]),
        box=box,
        multimask_output=False,
        return_logits=True,
    )
    assert our_score == pytest.approx(float(scores[0]), abs=1e-5)
    np.testing.assert_allclose(our_low, low[0], atol=1e-4)
    assert np.mean((ours > 0.5) == (masks[0] > 0)) > 0.998


def test_embedding_is_cached_and_refinement_skips_the_encoder(tiny_sam, monkeypatch):
    image = decoded(photo_array("coffee"))
    tiny_sam.forget()
    runs = tiny_sam.encoder_runs
    segment_image(tiny_sam, image, "coffee-sha")
    assert tiny_sam.encoder_runs == runs + 1

    def no_encoder(*_a, **_k):
        raise AssertionError("the image encoder ran for a refinement")

    monkeypatch.setattr(tiny_sam.predictor.model.image_encoder, "forward", no_encoder)
    first = segment_image(tiny_sam, image, "coffee-sha", Prompt(points=((300, 200),), labels=(1,)))
    again = segment_image(
        tiny_sam,
        image,
        "coffee-sha",
        Prompt(points=((300, 200), (50, 50)), labels=(1, 0), box=(60, 10, 500, 390)),
        previous_logits=first.low_res_logits,
    )
    boxes = segment_concepts(
        tiny_sam,
        image,
        "coffee-sha",
        {1: Prompt(box=(0, 0, 300, 400)), 2: Prompt(box=(300, 0, 600, 400))},
    )
    assert tiny_sam.encoder_runs == runs + 1
    assert first.method == again.method == "sam-refined"
    assert first.low_res_logits.shape == (32, 32)  # tiny SAM: 64-px input, 4× down
    assert set(boxes) == {1, 2}
    assert not (boxes[1].mask & boxes[2].mask).any()


def test_embedding_cache_is_keyed_by_photo_and_bounded(tiny_sam):
    tiny_sam.forget()
    runs = tiny_sam.encoder_runs
    image = decoded(photo_array("rocket"))
    for key in ("a", "b", "a"):
        segment_image(tiny_sam, image, key)
    assert tiny_sam.encoder_runs == runs + 2
    for i in range(tiny_sam.max_cached + 1):
        tiny_sam.embed(np.asarray(image.rgb), f"k{i}")
    assert not tiny_sam.is_cached("a", (427, 640))
    assert tiny_sam.is_cached(f"k{tiny_sam.max_cached}", (427, 640))


def test_segmenter_choice_and_labels(tiny_models):
    from engine.jobs.warm_cache import WarmCache

    models = WarmCache()
    sam = load_segmenter_for(setup_for("tiny"), "sam", models)
    assert isinstance(sam, SamSegmenter)
    assert load_segmenter_for(setup_for("tiny"), "sam", models) is sam  # kept warm
    # Automatic on the test profile: its SAM's masks would be noise, GrabCut's are cut-outs.
    auto = load_segmenter_for(setup_for("tiny"), "auto", models)
    assert isinstance(auto, GrabCutSegmenter) and auto.fallback and not auto.test_model
    assert "test model" in auto.label and "GrabCut" in auto.label
    assert len(models.loaded_keys()) == 1  # only the SAM asked for by name is loaded
    fallback = load_segmenter_for(setup_for("sd15"), "auto")  # no real weights here
    assert isinstance(fallback, GrabCutSegmenter) and fallback.fallback
    assert "mycanvas models download sd15" in fallback.label
    with pytest.raises(ModelMissingError):
        load_segmenter_for(setup_for("sd15"), "sam")
    with pytest.raises(InputError):
        load_segmenter_for(setup_for("tiny"), "magic")


def test_prompts_are_validated():
    with pytest.raises(InputError):
        Prompt()
    with pytest.raises(InputError):
        Prompt(points=((1, 2),), labels=())
    with pytest.raises(InputError):
        Prompt(points=((1, 2),), labels=(2,))
    assert Prompt(box=(50, 60, 10, 20)).box == (10.0, 20.0, 50.0, 60.0)


# --------------------------------------------------------------------------- jobs


def project_with_photos(project: Project, tmp_path: Path) -> tuple[int, int]:
    mochi = project.add_concept("Mochi", "cat")
    cup = project.add_concept("Cup", "cup")
    import_photos(project, mochi.id, [save_photo(tmp_path, "cat", photo_array("cat"))])
    import_photos(project, cup.id, [save_photo(tmp_path, "coffee", photo_array("coffee"))])
    return mochi.id, cup.id


def test_segment_job_with_the_fallback_stores_masks_and_cutouts(project, tmp_path):
    mochi, cup = project_with_photos(project, tmp_path)
    events: list = []
    result = segment_job(
        inline_context(events.append),
        SegmentParams(project=str(project.root), method="auto", overrides={}),
    )
    assert result.fallback and len(result.masks) == 2 and not result.failed
    assert any(
        isinstance(e, JobLog) and "fallback" in e.text.lower() and e.level == "warning"
        for e in events
    )
    assert any(isinstance(e, JobPreview) for e in events)
    assert [e.step for e in events if isinstance(e, JobProgress)][-1] == 2
    for concept_id, name in ((mochi, "cat"), (cup, "coffee")):
        (mask,) = project.current_masks(concept_id).values()
        photo = project.photo(mask.photo_id)
        assert mask.method == "fallback-grabcut"
        stored = read_mask(str(project.abspath(mask.file)))
        assert stored.shape == (photo.height, photo.width)
        assert mask_iou(stored, reference(name)) >= FALLBACK_AUTO_FLOOR[name]
        with Image.open(project.abspath(mask.cutout_file)) as cut:
            x0, y0, x1, y1 = mask_bbox(stored)
            assert cut.mode == "RGBA" and cut.size == (x1 - x0, y1 - y0)
    again = segment_job(
        inline_context(), SegmentParams(project=str(project.root), concept="Mochi", overrides={})
    )
    assert again.skipped == 1 and not again.masks
    redo = segment_job(
        inline_context(),
        SegmentParams(project=str(project.root), concept="Mochi", redo=True, overrides={}),
    )
    assert len(redo.masks) == 1 and len(project.masks(concept_id=mochi)) == 2


def test_a_photo_whose_file_is_gone_is_reported_and_the_others_done(project, tmp_path):
    mochi, cup = project_with_photos(project, tmp_path)
    (lost,) = project.photos(mochi)
    project.abspath(lost.file).unlink()
    result = segment_job(
        inline_context(), SegmentParams(project=str(project.root), method="fallback", overrides={})
    )
    assert [f["photo"] for f in result.failed] == ["Mochi's cat.png"]  # the concept named too
    assert "missing" in result.failed[0]["reason"]
    assert [m["concept_id"] for m in result.masks] == [cup]


def test_segment_job_with_tiny_sam(project, tmp_path, tiny_models):
    project_with_photos(project, tmp_path)
    events: list = []
    result = segment_job(
        inline_context(events.append),
        SegmentParams(
            project=str(project.root), concept="Mochi", profile="tiny", device="cpu",
            overrides={}, method="sam"),
    )
    assert not result.fallback and result.test_model
    assert [m["method"] for m in result.masks] == ["sam"] and not result.failed
    assert any(isinstance(e, JobLog) and "random weights" in e.text for e in events)
    (mask,) = project.masks()
    assert mask.profile == "tiny" and mask.test_model  # the mask says a test model made it


def test_multi_concept_photo_gives_each_concept_its_own_mask(project, tmp_path):
    _, cup = project_with_photos(project, tmp_path)
    spoon = project.add_concept("Spoon", "spoon").id
    (photo,) = project.photos(cup)  # the coffee photo shows the cup and the spoon
    spoon_box = (320, 55, 430, 335)
    result = segment_prompts_job(
        inline_context(),
        SegmentPromptsParams(
            project=str(project.root),
            photo_id=photo.id,
            prompts=[
                {"concept": "Cup", "box": [70, 10, 485, 395]},
                {"concept": spoon, "box": spoon_box},
            ],
            method="fallback",
            overrides={},
        ),
    )
    assert {m["concept_id"] for m in result.masks} == {spoon, cup}
    masks = {
        m.concept_id: read_mask(str(project.abspath(m.file)))
        for m in project.masks(photo_id=photo.id)
    }
    assert set(masks) == {spoon, cup}
    assert not (masks[spoon] & masks[cup]).any()
    x0, _, x1, y1 = mask_bbox(masks[spoon])
    assert x0 >= spoon_box[0] - 4 and x1 <= spoon_box[2] + 4 and y1 <= spoon_box[3] + 10
    assert masks[spoon].sum() < masks[cup].sum() / 4
    assert mask_iou(masks[cup] | masks[spoon], reference("coffee")) > 0.9
    assert all(m.method == "fallback-grabcut-refined" for m in project.masks(photo_id=photo.id))


def test_a_multi_concept_prompt_that_finds_nothing_saves_nothing(project, tmp_path):
    mochi, cup = project_with_photos(project, tmp_path)
    (photo,) = project.photos(cup)
    with pytest.raises(InputError, match="found nothing for Mochi"):
        segment_prompts_job(  # the top-right corner of the coffee photo is bare table
            inline_context(),
            SegmentPromptsParams(
                project=str(project.root),
                photo_id=photo.id,
                prompts=[
                    {"concept": "Cup", "box": [70, 10, 485, 395]},
                    {"concept": mochi, "box": [480, 0, 600, 120]},
                ],
                method="fallback",
                overrides={},
            ),
        )
    assert project.masks() == []


def test_refinement_job_seeds_from_the_current_mask(project, tmp_path):
    _, cup = project_with_photos(project, tmp_path)
    segment_job(
        inline_context(),
        SegmentParams(project=str(project.root), concept="Cup", method="fallback", overrides={}),
    )
    (photo,) = project.photos(cup)
    segment_prompts_job(
        inline_context(),
        SegmentPromptsParams(
            project=str(project.root),
            photo_id=photo.id,
            prompts=[{"concept": "Cup", "points": [[560, 200]], "labels": [0]}],
            method="fallback",
            overrides={},
        ),
    )
    latest = project.current_masks(cup)[photo.id]
    assert latest.method == "fallback-grabcut-refined"
    refined = read_mask(str(project.abspath(latest.file)))
    assert not refined[200, 560] and mask_iou(refined, reference("coffee")) > 0.8


def test_bad_prompts_fail_with_a_reason_and_write_nothing(project, tmp_path):
    _, cup = project_with_photos(project, tmp_path)
    (photo,) = project.photos(cup)
    before = project.summary()
    for prompts, message in (
        ([], "at least one"),
        ([{"concept": "Nobody", "box": [1, 1, 50, 50]}], "No concept"),
        ([{"concept": "Cup", "box": [900, 900, 990, 990]}], "outside"),
    ):
        with pytest.raises(InputError, match=message):
            segment_prompts_job(
                inline_context(),
                SegmentPromptsParams(
                    project=str(project.root),
                    photo_id=photo.id,
                    prompts=prompts,
                    method="fallback",
                    overrides={},
                ),
            )
    assert project.summary() == before


def test_cancelling_segmentation_keeps_the_project_consistent(project, tmp_path):
    project_with_photos(project, tmp_path)
    token = CancelToken()
    seen: list = []

    def sink(event):
        seen.append(event)
        if isinstance(event, JobPreview):  # cancel after the first photo is saved
            token.cancel()

    ctx = JobContext("job", sink, token)
    with pytest.raises(Cancelled):
        segment_job(ctx, SegmentParams(project=str(project.root), method="fallback", overrides={}))
    masks = project.masks()
    assert len(masks) == 1
    assert project.abspath(masks[0].file).is_file()
    assert project.abspath(masks[0].cutout_file).is_file()


def test_an_exif_rotated_photo_is_segmented_upright(project, tmp_path):
    concept = project.add_concept("Mochi", "cat")
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(photo_array("cat")).save(path, quality=92, exif=exif.tobytes())
    import_photos(project, concept.id, [path])
    segment_job(
        inline_context(), SegmentParams(project=str(project.root), method="fallback", overrides={})
    )
    (mask,) = project.masks()
    photo = project.photo(mask.photo_id)
    assert (photo.width, photo.height) == (300, 451)
    assert read_mask(str(project.abspath(mask.file))).shape == (451, 300)
    assert load_photo(project, photo).size == (300, 451)


# --------------------------------------------------------------------------- CLI


def mycanvas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "desktop_app.launcher", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ.copy(),
        timeout=300,
    )


def test_cli_add_concept_and_segment(tmp_path):
    cat = save_photo(tmp_path, "cat", photo_array("cat"))
    (tmp_path / "notes.png").write_text("not a photo")
    assert mycanvas("new", str(tmp_path / "p")).returncode == 0
    added = mycanvas(
        "add-concept",
        str(tmp_path / "p"),
        "Mochi",
        "--class",
        "cat",
        str(cat),
        str(tmp_path / "notes.png"),
    )
    assert added.returncode == 1
    assert "<mochi> Mochi (cat, new concept): 1 photo(s) imported" in added.stdout
    assert "notes.png: not an image" in added.stderr
    seg = mycanvas("segment", str(tmp_path / "p"), "--concept", "Mochi", "--device", "cpu")
    assert seg.returncode == 0, seg.stderr
    assert "fallback-grabcut" in seg.stdout and "Classical fallback" in seg.stderr
    refine = mycanvas(
        "segment",
        str(tmp_path / "p"),
        "--photo",
        "1",
        "--concept",
        "Mochi",
        "--box",
        "0",
        "0",
        "400",
        "300",
        "--neg-point",
        "430",
        "150",
    )
    assert refine.returncode == 0, refine.stderr
    assert "fallback-grabcut-refined" in refine.stdout
    usage = mycanvas("segment", str(tmp_path / "p"), "--box", "0", "0", "9", "9")
    assert usage.returncode == 1 and "--concept" in usage.stderr


def test_cli_module_is_cheap_to_import():
    code = (
        "import sys, engine.cli.segment\n"
        "print([m for m in ('torch', 'cv2', 'PIL', 'numpy', 'segment_anything') "
        "if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stderr


# --------------------------------------------------------------------------- slow: ViT-B


@pytest.mark.slow
def test_full_size_vit_b_with_random_weights(tmp_path, monkeypatch):
    """Real SAM ViT-B architecture (random weights) through the real loader and the cache."""
    import time

    import torch

    from engine.models.tiny import save_random_sam

    folder = save_random_sam({"arch": "vit_b"}, tmp_path / "sam-vit-b")

    real_load = torch.load

    def weights_only_load(*args, **kwargs):
        assert kwargs.get("weights_only") is True, "torch.load without weights_only"
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", weights_only_load)
    segmenter = load_segmenter_for(setup_for("sd15", {"segmenter": str(folder)}), "sam")
    assert isinstance(segmenter, SamSegmenter) and not segmenter.test_model
    image = decoded(photo_array("coffee"))
    t0 = time.perf_counter()
    auto = segment_image(segmenter, image, "coffee")
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    refined = segment_image(segmenter, image, "coffee", Prompt(points=((300, 200),), labels=(1,)))
    refine_s = time.perf_counter() - t0
    assert auto.mask.shape == refined.mask.shape == (400, 600)
    assert refined.low_res_logits.shape == (256, 256)
    assert segmenter.encoder_runs == 1
    assert refine_s < encode_s / 5, (refine_s, encode_s)
