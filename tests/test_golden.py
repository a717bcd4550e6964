"""Golden numbers: a few output values of each stage on the tiny profile (diffusers-style
expected slices). A refactor keeps every one of them; a change that moves a result fails here
first. Stages run through the CLI and are read back through the Project API, the two
interfaces a restructure must not change.

If a change is *meant* to move a number, re-derive it (the test prints what it got) and say
why in the commit.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from dataset_project import make_dataset_project
from PIL import Image
from train_project import make_train_project

from engine.cli import main
from engine.project import Project

TINY = ["--profile", "tiny", "--device", "cpu"]


@pytest.fixture(autouse=True)
def float32_reference():
    """Golden numbers are the float32 reference, the same on every processor: bf16 compute
    runs only where the CPU has bf16 units (tests/test_cpu_precision.py bounds its drift)."""
    from engine.settings import Settings, save_settings

    save_settings(Settings(precision="float32"))


def pixels(project: Project, rel: str) -> np.ndarray:
    with Image.open(project.abspath(rel)) as im:
        return np.asarray(im.convert("RGB") if im.mode not in ("L", "1") else im)


def test_dataset_item_pixels(tmp_path, tiny_models):
    folder = make_dataset_project(tmp_path / "ds")
    assert main(["-q", "build-dataset", str(folder), "--count", "1", "--steps", "2",
                 "--resolution", "64", "--seed", "7", *TINY]) == 0
    with Project.open(folder) as project:
        item = project.dataset_items()[0]
        image = pixels(project, item.image_file)
        mask_hashes = {cid: hashlib.sha256(pixels(project, rel).tobytes()).hexdigest()[:16]
                       for cid, rel in item.masks.items()}
    got = image[::16, ::16, 0].tolist()
    expected = [[125, 125, 134, 124], [101, 118, 122, 94], [112, 113, 201, 0],
                [126, 101, 107, 144]]
    assert image.shape == (64, 64, 3)
    assert np.abs(np.array(got) - np.array(expected)).max() <= 1, got
    assert mask_hashes == {1: "8a49fe51b582c5d9", 2: "4ce503f1a73cfe99", 3: "1d542a713e2d32a5"}
    assert item.token_caption == ("a photo of <mochi> cat, <cup> mug and <rocket> rocket on a "
                                  "wooden table in a sunlit kitchen")
    assert item.caption == ("a photo of a cat to the left of a mug, and a rocket to the right "
                            "of the mug, on a wooden table in a sunlit kitchen")


def test_three_training_steps(tmp_path, tiny_models):
    from safetensors.torch import load_file

    folder = make_train_project(tmp_path / "tr")
    assert main(["-q", "train", str(folder), "--steps", "3", "--lr", "1e-3", "--batch-size",
                 "2", "--resolution", "64", "--checkpoint-every", "10", "--sample-every", "0",
                 *TINY]) == 0
    with Project.open(folder) as project:
        run_dir = project.abspath(project.runs()[-1].output_dir)
    losses = [json.loads(line)["loss"] for line in
              (run_dir / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert losses == pytest.approx([1.053514003753662, 1.0534766912460327, 1.050612211227417],
                                   abs=1e-5)
    weights = load_file(run_dir / "export" / "pytorch_custom_diffusion_weights.safetensors")
    key = ("down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor."
           "to_k_custom_diffusion.weight")
    assert weights[key].flatten()[:6].tolist() == pytest.approx(
        [-0.0806083083152771, -0.04080791398882866, 0.16313786804676056,
         0.013648453168570995, 0.00033494073431938887, -0.15847378969192505], abs=1e-5)
    token = load_file(run_dir / "export" / "mochi.safetensors")["<mochi>"]
    assert token.flatten()[:4].tolist() == pytest.approx(
        [0.028043659403920174, 0.013140194118022919, 0.03585521876811981,
         -0.018608490005135536], abs=1e-5)


def test_segmentation_fallback_mask(tmp_path, tiny_models):
    from skimage import data

    photo = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(photo)
    folder = tmp_path / "seg"
    assert main(["-q", "new", str(folder)]) == 0
    assert main(["-q", "add-concept", str(folder), "Cup", "--class", "mug", str(photo)]) == 0
    assert main(["-q", "segment", str(folder), "--method", "fallback", *TINY]) == 0
    with Project.open(folder) as project:
        mask = pixels(project, project.masks()[0].file)
    assert mask.shape == (400, 600) and int(mask.astype(bool).sum()) == 124232
    assert hashlib.sha256(mask.tobytes()).hexdigest() == (
        "3ab5b8cacd1660f5075f119121a4f222194bc7e18f0777fec8f133647038a670")


def test_solved_layout_and_fallback_caption():
    from engine.plan.answers import FallbackScene
    from engine.plan.layout_solver import LayoutSolver, Relation, SolverObject
    from engine.plan.planner import describe_layout

    solution = LayoutSolver().solve(
        [SolverObject(0, 30.0, 1.2, 1.0), SolverObject(1, 10.0, 0.8, 1.0),
         SolverObject(2, 60.0, 0.5, 1.0)], [Relation(0, "left_of", 1)], seed=11)
    boxes = [(b.key, b.x, b.y, b.w, b.h, b.z) for b in solution.boxes]
    expected = [(0, 0.12196989896887932, 0.5173066468151, 0.31080114797981934,
                 0.25900095664984946, 1),
                (1, 0.47918917519844373, 0.5827109321894632, 0.18066543665017942,
                 0.22583179581272428, 2),
                (2, 0.7015950765316392, 0.15935337061502386, 0.2551374623128929,
                 0.5102749246257858, 0)]
    for got, want in zip(boxes, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-12)
    assert solution.method == "sampled"
    assert [(r.subject, r.kind, r.other) for r in solution.relations] == [(0, "left_of", 1)]
    caption = describe_layout(solution, ["cat", "mug", "lamp"],
                              FallbackScene("a wooden table", "on"), seed=5)
    assert caption == "A cat, a mug and a lamp together on a wooden table."
