"""The sd15 profile from a rehearsal of its download (tests/hf_rehearsal.py: the Hugging Face
cache as huggingface_hub writes it, the published configs, full-size random weights): the
cache reads as huggingface_hub's own, `mycanvas doctor` finds every role, and `mycanvas
personalize --profile sd15` runs from photos to scored pictures on the real profile's code
path. Run under `flock /tmp/mycanvas-heavy.lock`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_rehearsal import (  # isort: skip
    PROFILE,
    download_manifest,
    downloaded_roles,
    personalize_on_rehearsal,
)

REPO = Path(__file__).resolve().parent.parent
GIB = 1024**3
pytestmark = pytest.mark.slow


def mycanvas(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.run([sys.executable, "-m", "desktop_app.launcher", *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


def test_the_rehearsal_is_a_cache_huggingface_hub_reads_as_its_own(sd15_cache):
    from huggingface_hub import hf_hub_download, scan_cache_dir

    from engine.models.profiles import get_profile

    info = scan_cache_dir(sd15_cache)
    assert not info.warnings, info.warnings
    repos = {r.repo_id: r for r in info.repos}
    profile = get_profile(PROFILE)
    for role in downloaded_roles():
        spec = profile.role(role)
        assert spec.repo in repos, spec.repo
        (revision,) = repos[spec.repo].revisions
        assert revision.refs == {"main"}
        files = sorted(str(f.file_path.relative_to(revision.snapshot_path))
                       for f in revision.files)
        assert files == download_manifest(role)
        assert set(spec.required) <= set(files) and all(spec.wants(f) for f in files)
        for f in revision.files:  # each file a relative symlink to its blob
            assert f.file_path.is_symlink() and not os.path.isabs(os.readlink(f.file_path))
            assert f.blob_path.parent.name == "blobs"
        # huggingface_hub's own offline lookup finds each required file in the snapshot.
        for name in spec.required:
            path = Path(hf_hub_download(spec.repo, name, revision=spec.revision,
                                        local_files_only=True))
            assert path == revision.snapshot_path / name
    # The SAM checkpoint is the pickle the real repository has, read weights-only.
    sam = get_profile(PROFILE).role("segmenter")
    assert sam.file and sam.file.endswith(".pth") and sam.file in download_manifest("segmenter")


def test_doctor_reports_sd15_present(sd15_cache):
    out = mycanvas("doctor", "--json")
    assert out.returncode == 0, out.stderr
    roles = json.loads(out.stdout)["profiles"][PROFILE]
    for role in downloaded_roles():
        assert roles[role]["present"] and roles[role]["state"] == "present", roles[role]
        assert roles[role]["path"].startswith(str(sd15_cache)), roles[role]
    text = mycanvas("doctor")
    assert text.returncode == 0, text.stderr
    lines = [line for line in text.stdout.splitlines() if line.startswith("  ")]
    block = text.stdout.split(f"profile {PROFILE}", 1)[1]
    assert all(f"{role:<10} present " in block for role in downloaded_roles()), lines


def test_personalize_sd15_from_photos_to_scored_pictures(rehearsal_hub, tmp_path):
    """`mycanvas personalize --profile sd15` on the real profile's code path, end to end, at
    256 px with the smallest counts, from photos with painted masks (SAM's random weights
    find slivers; SAM itself is proven equal to upstream in test_upstream_equality)."""
    from PIL import Image

    from engine.project import Project

    done = personalize_on_rehearsal(rehearsal_hub, tmp_path)
    result = done.result
    print(f"\npersonalize sd15 (256 px, 1 layout, 1 item, 2 steps, 1 picture): "
          f"{done.seconds:.0f} s, peak RSS {done.peak_rss / GIB:.1f} GiB")
    assert result["profile"] == PROFILE and not result["test_models"]
    states = {s["stage"]: s["state"] for s in result["stages"]}
    # The photos have masks; generation scores its pictures as it makes them.
    assert states == {"segment": "skipped", "score": "skipped", **dict.fromkeys(
        ("plan", "dataset", "train", "generate"), "done")}, result
    assert result["scored"] == len(result["generation_ids"]) == 1
    assert -1.0 <= result["mean_ti_clip"] <= 1.0 and 0.0 <= result["mean_cp_clip"] <= 1.0
    with Project.open(done.project) as proj:
        (run,) = proj.runs()
        assert run.status == "finished" and run.config["profile"] == PROFILE
        assert run.config["train"]["resolution"] == 256
        (item,) = proj.dataset_items()
        assert Image.open(proj.abspath(item.image_file)).size == (256, 256)
        (picture,) = proj.gallery()
        assert picture.scored and not picture.test_model
        assert Image.open(picture.path).size == (256, 256)
        assert {m.method for m in proj.masks()} == {"painted"}
    # Measured: 10.9 GiB from SD 1.5's float32 files, 14.5 GiB from its half-precision files
    # (what the profile downloads), up-cast to float32 on the CPU. CI's machine has 24 GiB.
    assert done.peak_rss < 16 * GIB
