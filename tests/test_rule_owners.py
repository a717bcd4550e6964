"""Rules that used to be written two or three times (issue 25) now have one owner each: these
tests pin the owner, so a copy that comes back, or a reader that goes its own way, fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from engine.errors import InputError

# --------------------------------------------------------------------------- model roles


def test_whether_a_role_must_be_downloaded_is_one_field_every_reader_uses(monkeypatch):
    from desktop_app.widgets import models_banner
    from engine.models import profiles
    from engine.score import scoring_models_present

    tiny = profiles.get_profile("tiny")
    built_later = profiles.role_status(tiny, "clip")
    assert built_later.made_here and not built_later.needs_download
    gone = {"clip": "/nonexistent/clip"}
    assert profiles.role_status(tiny, "clip", gone).needs_download
    assert profiles.missing_roles(tiny, ("clip", "detector"), gone) == ("clip",)
    assert not scoring_models_present("tiny", gone)
    assert scoring_models_present("tiny", {})
    assert models_banner.missing_roles("tiny", gone)["missing"].keys() == {"clip"}

    # The banner reads the field, not the words: a status whose note happens to say "pip
    # install" but is made here is not missing, and one with a tiny-looking source that is
    # not made here is.
    real = profiles.role_status

    def status(profile, role, overrides=None, verify=False):
        found = real(profile, role, overrides, verify)
        if role == "clip":
            return profiles.RoleStatus(found.profile, role, False, None, "tiny:clip (built)",
                                       "", made_here=False)
        return profiles.RoleStatus(found.profile, role, False, None, "somewhere",
                                   "pip install it", made_here=True)

    from engine.personalize.jobs import chain_stage
    from engine.score.jobs import SCORING_ROLES
    from engine.score.models import SCORING_ROLES as LOADED

    assert chain_stage("score").roles is SCORING_ROLES is LOADED is \
        models_banner.STEP_ROLES["Gallery"]

    monkeypatch.setattr(profiles, "role_status", status)
    assert set(models_banner.missing_roles("tiny", {})["missing"]) == {"clip"}
    assert profiles.missing_roles(tiny, ("clip", "detector", "base")) == ("clip",)


# --------------------------------------------------------------------------- masks


def test_holes_are_filled_by_one_function_with_both_rules():
    from engine import masks
    from engine.extract import mask_ops
    from engine.segment import auto_choice, cleanup

    assert cleanup.fill_holes is masks.fill_holes is mask_ops.fill_holes is auto_choice.fill_holes
    assert cleanup.keep_main_component is masks.keep_main_component is \
        mask_ops.keep_main_component
    assert not hasattr(cleanup, "upsample_mask")
    ring = np.zeros((40, 40), bool)
    ring[5:35, 5:35] = True
    ring[15:25, 15:25] = False
    assert masks.fill_holes(ring).all(where=np.pad(np.ones((30, 30), bool), 5))
    assert np.array_equal(masks.fill_holes(ring, keep_open=[(20, 20)]), ring)
    other = np.zeros_like(ring)
    other[18:22, 18:22] = True  # another concept seen through the hole keeps its pixels
    filled = masks.fill_holes(ring, free=~other)
    assert not (filled & other).any() and filled.sum() == ring.sum() + 100 - 16


def test_one_rule_keeps_the_main_part_clicked_parts_and_large_halves():
    from engine.masks import keep_main_component

    mask = np.zeros((30, 60), bool)
    mask[5:25, 2:22] = True  # 400 px, the main part
    mask[5:15, 30:40] = True  # 100 px: a quarter of it
    mask[1:3, 50:52] = True  # a speck
    assert keep_main_component(mask).sum() == 400
    assert keep_main_component(mask, positive=[(51, 2)]).sum() == 404
    assert keep_main_component(mask, keep_fraction=0.2).sum() == 500
    assert not keep_main_component(np.zeros((4, 4), bool)).any()


def test_one_mask_resize_enlarges_in_uint8():
    """Segmentation's upsampling (uint8: a 48-megapixel mask in 2 x 48 MB) is the one
    resize_mask: on this mask float32 interpolation would give six other pixels."""
    import cv2

    from engine.masks import resize_mask

    small = np.array([[0, 1, 0, 1, 1, 0, 1], [0, 1, 1, 1, 0, 1, 0], [0, 0, 0, 1, 1, 0, 1],
                      [0, 0, 1, 0, 1, 1, 0], [1, 1, 0, 1, 0, 1, 1], [0, 1, 1, 0, 1, 0, 0],
                      [0, 0, 1, 0, 1, 1, 1], [1, 1, 1, 0, 1, 0, 0]], bool)
    big = resize_mask(small, (23, 18))
    assert big.dtype == bool and big.shape == (18, 23)
    want = cv2.resize(np.where(small, np.uint8(255), np.uint8(0)), (23, 18),
                      interpolation=cv2.INTER_LINEAR) >= 128
    assert np.array_equal(big, want)
    as_float = cv2.resize(small.astype(np.float32), (23, 18),
                          interpolation=cv2.INTER_LINEAR) >= 0.5
    assert int((big != as_float).sum()) == 6


def _cutout(path: Path, box: tuple[int, int, int, int] | None) -> Path:
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., :3] = 200
    if box:
        x0, y0, x1, y1 = box
        rgba[y0:y1, x0:x1, 3] = 255
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def test_cutouts_are_read_and_trimmed_in_one_place(tmp_path):
    from engine.masks import read_cutout

    image = read_cutout(_cutout(tmp_path / "a.png", (5, 2, 25, 12)), "a.png")
    assert image is not None and image.size == (20, 10) and image.mode == "RGBA"
    assert read_cutout(_cutout(tmp_path / "empty.png", None), "empty.png") is None
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"The cut-out bad\.png cannot be read"):
        read_cutout(tmp_path / "bad.png", "bad.png")


def test_the_three_cutout_readers_share_the_reader(tmp_path, monkeypatch):
    """Scoring, composing and planning all read a cut-out through engine.masks.read_cutout."""
    from types import SimpleNamespace

    from engine import masks
    from engine.dataset.compose import load_cutout
    from engine.plan.planner import cutout_aspect
    from engine.score.scorer import ReferenceBank

    _cutout(tmp_path / "c.png", (0, 0, 30, 10))
    calls = []
    real = masks.read_cutout

    def counted(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(masks, "read_cutout", counted)
    mask = SimpleNamespace(id=1, concept_id=1, photo_id=1, file="m.png", cutout_file="c.png")
    project = SimpleNamespace(abspath=lambda rel: tmp_path / rel,
                              current_masks=lambda _cid: {1: mask})
    assert load_cutout(project, mask).image.size == (30, 10)  # type: ignore[arg-type]
    assert cutout_aspect(project, 1) == pytest.approx(3.0)  # type: ignore[arg-type]
    cache = ReferenceBank(project, embedder=None)  # type: ignore[arg-type]
    assert cache._cutout("c.png").size == (30, 10)
    assert len(calls) == 3
    _cutout(tmp_path / "c.png", None)
    with pytest.raises(InputError, match="empty"):
        cache._cutout("c.png")


# --------------------------------------------------------------------------- recipes


def _png_with_chunk(path: Path, text: str) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("mycanvas_recipe", text)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


def test_every_recipe_reader_reads_the_chunk_with_the_same_limits(tmp_path):
    from engine.generate import recipe as generate_recipe
    from engine.image_files import MAX_NESTING, RECIPE_KEY
    from engine.project import RECIPE_KEY as PROJECT_KEY
    from engine.project import read_recipe
    from engine.project.repair_files import recipe_row

    assert PROJECT_KEY == RECIPE_KEY == generate_recipe.PNG_RECIPE_KEY
    deep = _png_with_chunk(tmp_path / "deep.png",
                           json.dumps({"format": "mycanvas-recipe", "prompt": "p",
                                       "x": [[[[[[[1]]]]]]]}))
    long = _png_with_chunk(tmp_path / "long.png", json.dumps({"prompt": "p" * 70_000}))
    for png, why in ((deep, f"more than {MAX_NESTING} levels"), (long, "70,0")):
        for reader in (read_recipe, recipe_row, generate_recipe.recipe_from_png):
            with pytest.raises(InputError, match=why):
                reader(png)
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    assert recipe_row(plain) is None
    with pytest.raises(InputError, match="no MyCanvas recipe"):
        read_recipe(plain)


# --------------------------------------------------------------------------- words


def test_the_window_checks_tokens_with_the_catalogue_pattern():
    from desktop_app.widgets import concept_drop
    from engine.project import TOKEN_PATTERN, catalogue

    assert concept_drop.TOKEN_PATTERN is TOKEN_PATTERN is catalogue.TOKEN_PATTERN
    assert TOKEN_PATTERN.match("<mochi-2>") and not TOKEN_PATTERN.match("<Mochi>")


def test_the_window_proposes_the_token_the_catalogue_gives(tmp_path):
    from desktop_app.widgets import concept_drop
    from engine.project import Project, catalogue

    assert concept_drop.concept_token is catalogue.concept_token
    with Project.create(tmp_path / "p", "tokens") as project:
        taken = [project.add_concept("Mochi.v2", "cat").token]
        assert taken == [catalogue.concept_token("Mochi.v2", [])] == ["<mochi-v2>"]
        assert project.add_concept("mochi v2", "cat").token == catalogue.concept_token(
            "mochi-v2", taken) == "<mochi-v22>"


def test_a_label_is_found_whichever_apostrophe_the_text_or_label_uses():
    from engine.plan import answers, noun_phrases

    assert answers.mentions is noun_phrases.mentions
    assert answers.clean_label("Mom’s Bag") == "mom's bag"
    for text in ("A mom’s bag on a table.", "A mom's bag on a table."):
        for label in ("mom's bag", "mom’s bag"):
            assert [m.group(0).lower() for m in answers.mentions(text, label)] == [
                text[2:11].lower()]
            assert answers.names_every_object(text, [label])
            # The phrase finder sees the same label, so it reports no invented object.
            assert noun_phrases.introduced_objects(text, [label], "a table") == []
    assert answers.mentions("two mom’s bags", "mom's bag")[0].group("plural") == "s"
    assert not answers.mentions("a moms bag", "mom's bag")


# --------------------------------------------------------------------------- jobs


def test_prepare_openvino_resolves_its_models_like_every_stage(monkeypatch):
    from engine.dataset import openvino_prepare
    from engine.dataset.jobs import PrepareOpenVinoParams
    from engine.jobs import stage_setup

    seen = []
    real = stage_setup.resolve_stage

    def recorded(params, settings=None):
        seen.append(params)
        return real(params, settings)

    monkeypatch.setattr(stage_setup, "resolve_stage", recorded)
    params = PrepareOpenVinoParams(profile="tiny", device="cpu", overrides={"inpaint": "/no"})
    from engine.errors import MyCanvasError

    with pytest.raises(MyCanvasError):  # no OpenVINO here, or the overridden weights are gone
        openvino_prepare._resolve(params)
    assert seen == [params]
    setup = real(params)
    assert setup.profile.name == "tiny" and setup.device is not None
    assert setup.device.device == "cpu" and setup.overrides == {"inpaint": "/no"}


def test_both_pipelines_store_pixels_through_one_conversion(monkeypatch):
    import engine.device
    from engine.dataset import inpaint
    from engine.device import DevicePlan
    from engine.generate import sampler

    plan = DevicePlan("cpu", "float32", None, False, False, False)
    floats = [np.array([[[0.0, 0.5, 1.2]]], np.float32)]
    seen = []
    real = engine.device.uint8_pixels
    monkeypatch.setattr(engine.device, "uint8_pixels",
                        lambda images, p, what: seen.append(what) or real(images, p, what))
    for module in (sampler, inpaint):
        assert module._to_uint8(floats, plan).tolist() == [[[0, 128, 255]]]
    assert seen == ["Generation", "Inpainting"]


# --------------------------------------------------------------------------- run fingerprint


class _FakeModel:
    """What export_concepts reads of a fine-tuned model."""

    def __init__(self) -> None:
        import torch

        torch.manual_seed(0)
        layer = torch.nn.Linear(4, 4, bias=False)
        self.kv_layers = {"down.attn2.to_k": layer}
        self.unet = type("Unet", (), {"attn_processors": {"down.attn2.processor": None}})()
        self.rows = {"<mochi>": torch.randn(4)}

    def token_rows(self):
        return self.rows


def _export(folder: Path) -> Path:
    from engine.train import export_concepts

    return export_concepts(_FakeModel(), folder / "export", {
        "run_id": 1, "kind": "custom-diffusion", "base_model": {"profile": "tiny"},
        "concepts": [{"name": "Mochi", "token": "<mochi>", "class_word": "cat"}]})


def test_reading_a_run_does_not_hash_its_weights_again(tmp_path, monkeypatch):
    import hashlib

    from engine.generate.concepts import read_run_export
    from engine.train import read_manifest

    export = _export(tmp_path)
    stored = read_manifest(export)["fingerprint"]
    assert isinstance(stored, str) and len(stored) == 16

    def no_hashing(*_a, **_k):
        raise AssertionError("the weights were hashed on a read")

    monkeypatch.setattr(hashlib, "sha256", no_hashing)
    run = read_run_export(export)
    assert run.fingerprint == stored
    assert read_run_export(export).fingerprint == stored


def test_an_older_export_is_hashed_once_and_keeps_the_value(tmp_path, monkeypatch):
    import hashlib

    from engine.generate.concepts import read_run_export
    from engine.train import MANIFEST_NAME, read_manifest

    export = _export(tmp_path)
    stored = read_manifest(export)["fingerprint"]
    manifest = read_manifest(export)
    del manifest["fingerprint"]
    (export / MANIFEST_NAME).write_text(json.dumps(manifest), encoding="utf-8")

    real, calls = hashlib.sha256, []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "sha256", counted)
    run = read_run_export(export)
    assert calls == []  # reading the concepts (what a page does) hashes nothing
    assert run.fingerprint == stored and calls == [1]  # the same value the export stores
    assert run.fingerprint == stored and calls == [1]
    assert read_manifest(export)["fingerprint"] == stored
    assert read_run_export(export).fingerprint == stored and calls == [1]
