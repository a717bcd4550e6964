"""Tiny deterministic models: built from resources/tiny configs, loaded by the real loaders."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import InputError, ModelMissingError, MyCanvasError, UnsafeModelError
from engine.models import loaders, tiny
from engine.models.tiny import (
    ROLES,
    STAMP_NAME,
    build_tiny_role,
    ensure_tiny_models,
    is_built,
    tiny_role_dir,
)

REPO = Path(__file__).resolve().parent.parent


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")}


def _photo(w: int = 100, h: int = 70) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


# --------------------------------------------------------------------------- building


def test_every_role_is_built_in_the_real_layout(tiny_models):
    assert set(tiny_models) == set(ROLES)
    for role in ("base", "inpaint"):
        d = tiny_models[role]
        for rel in (
            "model_index.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors",
            "vae/diffusion_pytorch_model.safetensors",
            "text_encoder/model.safetensors",
            "tokenizer/vocab.json",
            "tokenizer/merges.txt",
            "scheduler/scheduler_config.json",
        ):
            assert (d / rel).is_file(), f"{role}/{rel}"
        index = json.loads((d / "model_index.json").read_text())
        assert index["safety_checker"] == [None, None]
        assert index["_class_name"] == tiny.tiny_config(role)["pipeline_class"]
    assert (tiny_models["segmenter"] / "config.json").is_file()
    assert (tiny_models["segmenter"] / "model.safetensors").is_file()
    assert (tiny_models["clip"] / "open_clip_config.json").is_file()
    assert (tiny_models["clip"] / "open_clip_model.safetensors").is_file()
    assert (tiny_models["detector"] / "model.safetensors").is_file()
    for d in tiny_models.values():  # safetensors only, no pickles anywhere
        assert not [p for p in d.rglob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]


def test_building_twice_gives_byte_identical_files(tiny_models, tmp_path):
    again = ensure_tiny_models(root=tmp_path / "again")
    for role in ROLES:
        first, second = _digests(tiny_models[role]), _digests(again[role])
        assert first == second, role
    text = "".join(p.read_text() for d in again.values() for p in d.rglob("*.json"))
    assert str(tmp_path) not in text  # no build paths leak into configs


def test_ensure_builds_once(tiny_models):
    root = next(iter(tiny_models.values())).parent
    before = _mtimes(root)
    again = ensure_tiny_models(root=root)
    assert again == tiny_models
    assert _mtimes(root) == before
    assert all(is_built(role, root) for role in ROLES)
    assert tiny_role_dir("clip", root) == tiny_models["clip"]


def test_stamp_mismatch_rebuilds(tmp_path):
    root = tmp_path / "tiny"
    folder = ensure_tiny_models(root=root, roles=["segmenter"])["segmenter"]
    weights = folder / "model.safetensors"
    digest, mtime = hashlib.sha256(weights.read_bytes()).hexdigest(), weights.stat().st_mtime_ns
    stamp = (folder / STAMP_NAME).read_bytes()
    (folder / STAMP_NAME).write_text('{"builder_version": 0}')
    assert not is_built("segmenter", root)

    ensure_tiny_models(root=root, roles=["segmenter"])

    assert (folder / STAMP_NAME).read_bytes() == stamp
    assert weights.stat().st_mtime_ns != mtime  # rebuilt ...
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == digest  # ... to the same bytes
    assert sorted(p.name for p in root.iterdir()) == ["segmenter"]  # no temp folders left


def test_changed_config_rebuilds_with_new_weights(tmp_path):
    configs = tmp_path / "configs"
    shutil.copytree(tiny.CONFIG_DIR, configs)
    root = tmp_path / "tiny"
    folder = ensure_tiny_models(root=root, roles=["segmenter"], config_dir=configs)["segmenter"]
    old = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    cfg = json.loads((configs / "segmenter.json").read_text())
    cfg["seed"] += 1
    (configs / "segmenter.json").write_text(json.dumps(cfg))
    assert not is_built("segmenter", root, config_dir=configs)

    ensure_tiny_models(root=root, roles=["segmenter"], config_dir=configs)

    assert is_built("segmenter", root, config_dir=configs)
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() != old


def test_inpaint_config_extends_base():
    base, inpaint = tiny.tiny_config("base"), tiny.tiny_config("inpaint")
    assert inpaint["unet"]["in_channels"] == 9 and base["unet"]["in_channels"] == 4
    assert inpaint["vae"] == base["vae"] and inpaint["text_encoder"] == base["text_encoder"]
    assert tiny.config_hash("base") != tiny.config_hash("inpaint")


def test_failed_build_leaves_no_half_folder(tmp_path, monkeypatch):
    root = tmp_path / "tiny"
    root.mkdir()
    stale = root / f".segmenter.building-{2**31 - 7}-dead"  # a build killed long ago
    (stale / "partial").mkdir(parents=True)

    def crash(cfg, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed mid-build")

    monkeypatch.setitem(tiny._BUILDERS, "sam", crash)
    with pytest.raises(RuntimeError, match="killed mid-build"):
        ensure_tiny_models(root=root, roles=["segmenter"])
    assert list(root.iterdir()) == []
    assert not is_built("segmenter", root)


def test_build_refuses_non_empty_folder_and_unknown_role(tmp_path):
    (tmp_path / "keep.txt").write_text("user file")
    with pytest.raises(InputError, match="non-empty"):
        build_tiny_role("segmenter", tmp_path)
    with pytest.raises(InputError, match="Unknown tiny model role"):
        ensure_tiny_models(root=tmp_path / "x", roles=["vae"])


# --------------------------------------------------------------------------- loading + forward


def test_text_to_image_generates_64px_in_two_steps(tiny_models):
    pipe = loaders.load_text_to_image(tiny_models["base"], device="cpu", dtype="float32")
    assert pipe.vae_scale_factor == 8 and pipe.unet.config.sample_size == 8
    assert all(hasattr(b, "attentions") for b in pipe.unet.down_blocks)  # both levels
    assert all(hasattr(b, "attentions") for b in pipe.unet.up_blocks)

    def run() -> np.ndarray:
        g = torch.Generator("cpu").manual_seed(0)
        return pipe("a photo of a cat", num_inference_steps=2, generator=g, output_type="np").images

    images = run()
    assert images.shape == (1, 64, 64, 3)
    assert np.isfinite(images).all()
    assert np.array_equal(images, run())  # seeded → reproducible


def test_inpaint_pipeline_runs_with_a_mask(tiny_models):
    pipe = loaders.load_inpaint(tiny_models["inpaint"])
    assert pipe.unet.config.in_channels == 9
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    out = pipe(
        "a dog on grass",
        image=_photo(64, 64),
        mask_image=mask,
        num_inference_steps=2,
        strength=0.9,
        guidance_scale=6.0,
        generator=torch.Generator("cpu").manual_seed(0),
    ).images[0]
    assert out.size == (64, 64)


def test_segmenter_predicts_masks_for_a_point(tiny_models):
    from segment_anything import SamPredictor

    sam = loaders.load_segmenter(tiny_models["segmenter"])
    assert not sam.training and sam.image_encoder.img_size == 64
    predictor = SamPredictor(sam)
    image = np.asarray(_photo(80, 48))
    predictor.set_image(image)
    masks, scores, low_res = predictor.predict(
        point_coords=np.array([[40, 24]]), point_labels=np.array([1]), multimask_output=True
    )
    assert masks.shape == (3, 48, 80) and masks.dtype == bool
    assert scores.shape == (3,) and low_res.shape == (3, 32, 32)


def test_clip_encodes_images_and_text(tiny_models):
    model, preprocess, tokenizer = loaders.load_clip(tiny_models["clip"])
    x = preprocess(_photo()).unsqueeze(0)
    assert x.shape == (1, 3, 64, 64)
    tokens = tokenizer(["a photo of a cat", "a dog"])
    assert tokens.shape == (2, 77)
    with torch.no_grad():
        assert model.encode_image(x).shape == (1, 32)
        assert model.encode_text(tokens).shape == (2, 32)


def test_detector_runs_through_its_processor(tiny_models):
    model, processor = loaders.load_detector(tiny_models["detector"])
    inputs = processor(text=[["a cat", "a dog"]], images=_photo(), return_tensors="pt")
    assert inputs["pixel_values"].shape == (1, 3, 64, 64)
    assert inputs["input_ids"].shape == (2, 16)
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits.shape == (1, 64, 2) and out.pred_boxes.shape == (1, 64, 4)
    found = processor.post_process_grounded_object_detection(
        out, threshold=0.0, target_sizes=torch.tensor([[70, 100]])
    )
    assert found[0]["boxes"].shape[-1] == 4


def test_device_and_dtype_strings():
    assert loaders.resolve_device_dtype("cpu", "fp16") == (torch.device("cpu"), torch.float16)
    assert loaders.resolve_device_dtype("cpu", None)[1] is torch.float32
    with pytest.raises(InputError, match="dtype"):
        loaders.resolve_device_dtype("cpu", "int3")
    with pytest.raises(InputError, match="device"):
        loaders.resolve_device_dtype("toaster")


# --------------------------------------------------------------------------- loader refusals


@pytest.mark.parametrize(
    "load",
    [
        loaders.load_text_to_image,
        loaders.load_inpaint,
        loaders.load_segmenter,
        loaders.load_clip,
        loaders.load_detector,
    ],
)
def test_missing_path_is_model_missing_and_named(tmp_path, load):
    missing = tmp_path / "not-downloaded"
    with pytest.raises(ModelMissingError, match=re.escape(str(missing))):
        load(missing)


def test_clip_refuses_bin_weights(tiny_models, tmp_path):
    folder = tmp_path / "clip-bin"
    folder.mkdir()
    shutil.copy(tiny_models["clip"] / "open_clip_config.json", folder)
    torch.save({"logit_scale": torch.ones(())}, folder / "open_clip_pytorch_model.bin")
    with pytest.raises(UnsafeModelError, match=r"open_clip_pytorch_model\.bin"):
        loaders.load_clip(folder)
    with pytest.raises(UnsafeModelError, match="safetensors"):
        loaders.load_clip(folder / "open_clip_pytorch_model.bin")


def test_detector_refuses_pickle_only_folder(tiny_models, tmp_path):
    folder = tmp_path / "owl"
    shutil.copytree(tiny_models["detector"], folder)
    (folder / "model.safetensors").unlink()
    torch.save({}, folder / "pytorch_model.bin")
    with pytest.raises(UnsafeModelError, match=r"pytorch_model\.bin"):
        loaders.load_detector(folder)


def test_text_to_image_refuses_an_inpainting_unet(tiny_models):
    with pytest.raises(InputError, match="inpainting"):
        loaders.load_text_to_image(tiny_models["inpaint"])


def test_broken_pipeline_folder_names_the_folder(tiny_models, tmp_path):
    folder = tmp_path / "sd"
    shutil.copytree(tiny_models["base"], folder)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(MyCanvasError, match=re.escape(str(folder))):
        loaders.load_text_to_image(folder)


def test_segmenter_weights_that_do_not_fit_list_keys(tiny_models, tmp_path):
    folder = tmp_path / "sam"
    shutil.copytree(tiny_models["segmenter"], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["encoder_depth"] = 3
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match=r"1\d* missing \(e\.g\. image_encoder\.blocks\.2"):
        loaders.load_segmenter(folder)


def test_segmenter_from_a_pth_checkpoint_file(tiny_models, tmp_path):
    # An official-style checkpoint: a bare torch.save'd state dict, read weights-only.
    from safetensors.torch import load_file

    state = load_file(str(tiny_models["segmenter"] / "model.safetensors"))
    ckpt = tmp_path / "sam_tiny.pth"
    torch.save(state, ckpt)
    cfg = json.loads((tiny_models["segmenter"] / "config.json").read_text())
    sam = loaders.load_segmenter(ckpt, arch=cfg)
    assert torch.equal(sam.mask_decoder.iou_token.weight, state["mask_decoder.iou_token.weight"])
    with pytest.raises(InputError, match="not a recognised SAM checkpoint"):
        loaders.load_segmenter(ckpt)  # no arch given, and the width is not an official one


@pytest.mark.slow
def test_official_sam_vit_b_checkpoint_layout_loads_weights_only(tmp_path):
    from segment_anything import sam_model_registry

    ckpt = tmp_path / "sam_vit_b_01ec64.pth"
    torch.manual_seed(0)
    torch.save(sam_model_registry["vit_b"]().state_dict(), ckpt)
    sam = loaders.load_segmenter(ckpt)  # arch recognised from the weights
    assert sam.image_encoder.patch_embed.proj.out_channels == 768


def _free_unpickling(tree: ast.AST) -> list[int]:
    """Lines of calls that could unpickle freely: torch.load without weights_only=True (a
    call spread over several lines included), and pickle/dill loads of any kind."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        owner_name = owner.id if isinstance(owner, ast.Name) else ""
        if owner_name == "torch" and node.func.attr == "load":
            safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant)
                       and k.value.value is True for k in node.keywords)
            if not safe:
                lines.append(node.lineno)
        elif owner_name in ("pickle", "dill", "cPickle") and node.func.attr in ("load", "loads"):
            lines.append(node.lineno)
    return lines


def test_no_engine_code_unpickles_freely():
    """Every torch.load in the engine passes weights_only=True, and nothing else unpickles
    (principle 4). Read with the AST, so a call over several lines is seen whole."""
    offenders = []
    for path in (REPO / "engine").rglob("*.py"):
        for line in _free_unpickling(ast.parse(path.read_text(encoding="utf-8"))):
            offenders.append(f"{path.relative_to(REPO)}:{line}")
    assert not offenders, offenders
    assert "torch.load(" in (REPO / "engine" / "models" / "safe_load.py").read_text()


def test_the_unpickling_guard_sees_calls_a_regex_missed():
    spread = "import torch\nx = torch.load(\n    path,\n    map_location='cpu',\n)\n"
    fine = "import torch\nx = torch.load(\n    path,\n    weights_only=True,\n)\n"
    sneaky = "import pickle\nx = pickle.loads(data)\n"
    assert _free_unpickling(ast.parse(spread)) == [2]
    assert _free_unpickling(ast.parse(fine)) == []
    assert _free_unpickling(ast.parse(sneaky)) == [2]
