"""The quality harness (tests/benchmarks/quality.py): without the real models it says which are
missing and exits 0; its protocol runs on the tiny profile, so its code cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO / "tests" / "benchmarks" / "quality.py"


def test_without_the_models_it_names_them_and_exits_cleanly(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
           "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    out = subprocess.run([sys.executable, str(HARNESS), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("quality: nothing measured: the sd15 models are not on this "
                           "computer: "), text
    for repo in ("stable-diffusion-v1-5/stable-diffusion-v1-5",
                 "stable-diffusion-v1-5/stable-diffusion-inpainting", "ybelkada/segment-anything",
                 "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "google/owlvit-base-patch32"):
        assert repo in text, repo
    assert "mycanvas models download sd15" in text
    assert not (tmp_path / "out").exists()  # nothing measured, nothing written


def test_the_protocol_runs_on_the_tiny_profile(tmp_path, tiny_models, capsys):
    sys.path.insert(0, str(HARNESS.parent))
    try:
        import quality
    finally:
        sys.path.remove(str(HARNESS.parent))
    code = quality.main(["--profile", "tiny", "--device", "cpu", "--out", str(tmp_path),
                         "--work", str(tmp_path / "work"), "--layouts", "1", "--items", "1",
                         "--train-steps", "2", "--pictures", "1", "--steps", "2",
                         "--resolution", "128", "--smoke"])
    assert code == 0
    printed = capsys.readouterr().out
    payload = json.loads((tmp_path / "quality-latest.json").read_text())
    arms = payload["result"]["arms"]
    pictures = 1  # --smoke: the first scene and seed
    for arm in ("layout-guided", "plain"):
        means = arms[arm]
        assert means["pictures"] == means["scored"] == pictures, means
        assert means["guided"] == (pictures if arm == "layout-guided" else 0), means
        for key, _label in quality.METRICS:
            assert isinstance(means[key], float) and -1.0 <= means[key] <= 2.5, (arm, key)
    metrics = [row["metric"] for row in payload["rows"]]
    assert "TI-CLIP (layout-guided)" in metrics and "CP-CLIP (plain)" in metrics
    assert "anti-bleed: CP-CLIP layout-guided - plain" in metrics
    assert "CD text alignment (plain)" in printed and "0.757-0.763" in printed
    assert "test models, these numbers mean nothing" in printed
    assert payload["result"]["test_models"] is True
    # --resolution reached every stage: the dataset, the training and the pictures.
    from PIL import Image

    from engine.project import Project

    with Project.open(tmp_path / "work" / "project") as proj:
        (item,) = proj.dataset_items()
        assert Image.open(proj.abspath(item.image_file)).size == (128, 128)
        (run,) = proj.runs()
        assert run.config["train"]["resolution"] == 128
        sizes = {Image.open(g.path).size for g in proj.gallery()}
        assert sizes == {(128, 128)}
