"""Smaller downloads: the sd15 profile fetches SD 1.5's half-precision weight files (the
variant is data in the profile table, and every file list derives from it), loads them as
the device needs (float32 weights on a CPU), and stores a file two roles share once."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from engine.errors import InputError
from engine.models import profiles
from engine.models.profiles import download_mb, get_profile, with_variant, without_variant


def test_the_sd15_pipelines_download_their_fp16_files_and_the_lists_derive_from_the_table():
    sd15 = get_profile("sd15")
    for role in ("base", "inpaint"):
        spec = sd15.role(role)
        assert spec.variant == "fp16"
        assert "unet/diffusion_pytorch_model.fp16.safetensors" in spec.required
        assert "text_encoder/model.fp16.safetensors" in spec.allow
        assert not [f for f in spec.allow if f.endswith(".safetensors") and ".fp16." not in f]
        assert "model_index.json" in spec.required and "tokenizer/*" in spec.allow
        assert spec.wants("vae/diffusion_pytorch_model.fp16.safetensors")
        assert not spec.wants("vae/diffusion_pytorch_model.safetensors")
        # freeing the role's downloads also frees an older full-precision download
        assert spec.wants_any_variant("vae/diffusion_pytorch_model.safetensors")
    # roles whose repositories offer no half-precision files keep theirs
    assert sd15.role("clip").variant is None
    assert "open_clip_model.safetensors" in sd15.role("clip").required
    assert with_variant("unet/config.json", "fp16") == "unet/config.json"
    assert without_variant("unet/x.fp16.safetensors") == "unet/x.safetensors"


def test_the_download_total_is_the_half_precision_one():
    sd15 = get_profile("sd15")
    # published figures: 4265 MB per SD 1.5 pipeline in float32, half of it in float16
    assert sd15.role("base").approx_download_mb == sd15.role("inpaint").approx_download_mb == 2133
    total = download_mb(sd15, list(sd15.roles))
    assert total == 2133 * 2 + 375 + 605 + 613
    assert download_mb(get_profile("tiny"), list(sd15.roles)) == 0  # nothing downloaded


def test_a_bad_variant_names_its_field(tmp_path):
    table = json.loads(profiles.PROFILES_FILE.read_text())
    table["profiles"]["sd15"]["roles"]["base"]["variant"] = "int4"
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(table))
    with pytest.raises(InputError, match=r"profiles\.sd15\.roles\.base\.variant"):
        profiles._load_table(path)


def test_the_plan_says_how_much_the_missing_models_take():
    from engine.personalize.jobs import Plan
    from engine.personalize.planning import plan_text

    plan = Plan(preset="quick", profile="sd15", test_models=False, device="cpu",
                device_kind="cpu", missing_models=["base", "inpaint"],
                download_bytes=round(download_mb(get_profile("sd15"), ["base", "inpaint"])
                                     * 1e6))
    assert "missing models: base, inpaint (about 4.3 GB to download, mycanvas models " \
           "download sd15)" in plan_text(plan)


# --------------------------------------------------------------------------- loading


@pytest.fixture(scope="module")
def half_precision_base(tiny_models, tmp_path_factory) -> Path:
    """The tiny base pipeline saved the way the sd15 download is: fp16 weight files only."""
    from engine.models.loaders import load_text_to_image

    folder = tmp_path_factory.mktemp("fp16") / "base"
    pipe = load_text_to_image(tiny_models["base"], "cpu", "float32")
    pipe.to(torch.float16).save_pretrained(folder, variant="fp16", safe_serialization=True)
    assert not list(folder.glob("*/diffusion_pytorch_model.safetensors"))
    assert (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    return folder


def test_half_precision_files_load_as_float32_weights_on_a_cpu(tiny_models,
                                                               half_precision_base):
    from engine.models.loaders import load_text_to_image, weights_variant

    assert weights_variant(half_precision_base) == "fp16"
    assert weights_variant(tiny_models["base"]) is None
    full = load_text_to_image(tiny_models["base"], "cpu", "float32")
    half = load_text_to_image(half_precision_base, "cpu", "float32")
    for part in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(half, part).state_dict(), getattr(full, part).state_dict()
        assert all(v.dtype == torch.float32 for v in ours.values() if v.is_floating_point())
        for name, value in theirs.items():
            if value.is_floating_point():
                assert torch.equal(ours[name], value.half().float()), (part, name)


def test_half_precision_files_load_in_half_precision_where_the_device_computes_in_it(
        half_precision_base):
    from engine.models.loaders import load_text_to_image

    pipe = load_text_to_image(half_precision_base, "cpu", "float16")
    assert pipe.unet.dtype == torch.float16 and pipe.text_encoder.dtype == torch.float16


# --------------------------------------------------------------------------- stored once


@pytest.fixture
def own_hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    return tmp_path / "hf-hub"


def test_a_file_two_roles_share_is_stored_once(own_hf_cache, monkeypatch):
    """The inpainting download finds the base model's identical VAE in the cache: its blob
    becomes a hard link to it, and the Hub's downloader (which skips a blob it has) fetches
    only what differs."""
    import huggingface_hub

    from engine.models.hub import download_role, link_known_blob
    from engine.models.storage import repo_folder, tree_size

    sd15 = get_profile("sd15")
    shared_vae = b"the same VAE in both repositories" * 100
    contents = {repo: {name: (shared_vae if name.startswith("vae/") and name.endswith(
        ".safetensors") else f"{repo}:{name}".encode() * 10) for name in sd15.role(role).required}
        for role, repo in (("base", sd15.role("base").repo),
                           ("inpaint", sd15.role("inpaint").repo))}
    fetched: list[str] = []

    def fake_plan(spec):
        return [(n, len(d), hashlib.sha256(d).hexdigest()) for n, d in contents[spec.repo].items()]

    def fake_download(repo, filename, revision=None, tqdm_class=None):
        """What hf_hub_download does with the cache: a blob named by its hash, a link."""
        data = contents[repo][filename]
        blob = repo_folder(repo) / "blobs" / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            fetched.append(f"{repo}/{filename}")
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
        pointer = repo_folder(repo) / "snapshots" / "c0ffee" / filename
        pointer.parent.mkdir(parents=True, exist_ok=True)
        if not pointer.exists():
            pointer.symlink_to(os.path.relpath(blob, pointer.parent))
        return str(pointer)

    from engine.models import hub

    monkeypatch.setattr(hub, "plan_files", fake_plan)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    download_role(sd15, "base")
    download_role(sd15, "inpaint")
    vae = "vae/diffusion_pytorch_model.fp16.safetensors"
    assert f"{sd15.role('base').repo}/{vae}" in fetched
    assert f"{sd15.role('inpaint').repo}/{vae}" not in fetched  # linked, not fetched
    blobs = [repo_folder(sd15.role(r).repo) / "blobs" / hashlib.sha256(shared_vae).hexdigest()
             for r in ("base", "inpaint")]
    assert os.path.samefile(*blobs)
    total = sum(len(d) for files in contents.values() for d in files.values())
    assert tree_size(own_hf_cache) == total - len(shared_vae)  # the shared file once

    # deleting one repository's copy leaves the other's intact
    shutil.rmtree(repo_folder(sd15.role("base").repo))
    assert blobs[1].read_bytes() == shared_vae
    assert link_known_blob("nobody/else", hashlib.sha256(b"unknown").hexdigest()) is None


def test_an_earlier_full_precision_download_still_counts_as_present(own_hf_cache):
    """Who downloaded sd15 before the switch to fp16 files keeps using those files."""
    from test_storage import put_in_cache

    from engine.models.profiles import role_status, without_variant

    spec = get_profile("sd15").role("base")
    assert not role_status(get_profile("sd15"), "base").present
    put_in_cache(spec.repo, {without_variant(n): b"w" for n in spec.required})
    status = role_status(get_profile("sd15"), "base")
    assert status.present and (status.path / "unet/diffusion_pytorch_model.safetensors").exists()
