"""A project with two finished training runs on the tiny profile, for the generation tests.

Both runs train the same concepts (<mochi> cat, <cup> mug, <rocket> rocket and the global
<composition> token) on train_project's items, a few steps at a high learning rate so their
concepts move the model clearly; they differ by seed, so their weights differ while their
tokens are the same (the case where diffusers' textual-inversion loader refuses a token
already in the vocabulary).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from train_project import make_train_project

RUN_CONFIG = {"steps": 3, "learning_rate": 1e-2, "sample_every": 0, "checkpoint_every": 3}
PROMPT = "<mochi> cat and <cup> mug on a beach"
BOXES = {"mochi": [0.0, 0.0, 0.5, 1.0], "cup": [0.5, 0.0, 1.0, 1.0]}


def train_run(folder: Path, seed: int) -> int:
    from engine.jobs import JobFinished, run_inline

    end = run_inline("train", {"project": str(folder), "profile": "tiny", "device": "cpu",
                               "config": {**RUN_CONFIG, "seed": seed}})
    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    return end.result.run_id


def make_generate_project(folder: Path) -> tuple[Path, int, int]:
    """The project folder and its two runs' ids."""
    make_train_project(folder)
    return folder, train_run(folder, 0), train_run(folder, 1)


def add_copied_run(folder: Path, source_run: int, kind: str = "em-extract",
                   **manifest_changes) -> int:
    """A finished run of `kind` whose export is a copy of `source_run`'s (the manifest
    changed as asked): how an extraction run looks to generation."""
    from engine.project import Project, Run

    with Project.open(folder) as project:
        run = project.add_run(Run(kind=kind, status="running", config={"profile": "tiny"}))
    export = folder / "runs" / str(run.id) / "export"
    shutil.copytree(folder / "runs" / str(source_run) / "export", export)
    manifest_path = export / "mycanvas_concepts.json"
    manifest = json.loads(manifest_path.read_text())
    manifest.update({"run_id": run.id, **manifest_changes})
    manifest_path.write_text(json.dumps(manifest))
    with Project.open(folder) as project:
        project.update_run(run.id, status="finished", output_dir=f"runs/{run.id}")
    return run.id


def write_synthetic_export(folder: Path, pipe, concepts: dict[str, str], profile: str,
                           seed: int = 0) -> Path:
    """An export in the real format for `pipe`'s architecture without training: every
    cross-attention k/v nudged by seeded noise, one random row per token (what a finished
    run of that model would write). `concepts`: token -> class word."""
    import torch
    from safetensors.torch import save_file

    from engine.train.export import WEIGHTS_NAME, processor_state, token_file_name

    generator = torch.Generator().manual_seed(seed)
    kv = {}
    for name, module in pipe.unet.named_modules():
        if getattr(module, "is_cross_attention", False):
            for kind in ("to_k", "to_v"):
                weight = getattr(module, kind).weight.detach()
                noise = torch.randn(weight.shape, generator=generator) * weight.std() * 0.5
                kv[f"{name}.{kind}"] = weight + noise
    folder.mkdir(parents=True, exist_ok=True)
    save_file(processor_state(kv, list(pipe.unet.attn_processors)), str(folder / WEIGHTS_NAME))
    dim = pipe.text_encoder.get_input_embeddings().embedding_dim
    files = {}
    for token in concepts:
        files[token] = token_file_name(token)
        save_file({token: torch.randn(dim, generator=generator) * 0.02},
                  str(folder / files[token]))
    manifest = {"format": "mycanvas-custom-diffusion", "version": 1, "weights": WEIGHTS_NAME,
                "token_files": files, "run_id": 1, "base_model": {"profile": profile},
                "concepts": [{"name": t.strip("<>"), "token": t, "class_word": w}
                             for t, w in concepts.items()],
                "global_token": None}
    (folder / "mycanvas_concepts.json").write_text(json.dumps(manifest))
    return folder
