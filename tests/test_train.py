"""Fine-tuning: Custom Diffusion with Gen4Gen's prompt strategies, on the tiny profile."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from train_project import make_train_project
from worker_kill import kill_then_resume

from engine.errors import InputError
from engine.train.config import TrainConfig
from engine.train.prompts import (
    ConceptRef,
    PromptStrategies,
    bare_scene,
    choose_global_token,
    class_prompt,
    scene_from_caption,
    training_prompt,
)

MOCHI, CUP = ConceptRef("<mochi>", "cat"), ConceptRef("<cup>", "mug")
FAST = {"steps": 12, "learning_rate": 1e-3, "checkpoint_every": 4, "sample_every": 6,
        "sample_steps": 2, "batch_size": 2}


# --------------------------------------------------------------------------- prompts, config


def test_prompt_strategies_each_switch():
    scene = "on a wooden table in a sunlit kitchen"
    caption = "a photo of <mochi> cat and <cup> mug on a wooden table in a sunlit kitchen"
    on = PromptStrategies()
    assert training_prompt([MOCHI, CUP], scene, on, token_caption=caption) == (
        "<composition> a photo of <mochi> cat and <cup> mug, <mochi> cat, <cup> mug. "
        "background: a wooden table in a sunlit kitchen")
    off = PromptStrategies(False, False, False)
    assert training_prompt([MOCHI, CUP], scene, off, token_caption=caption) == caption
    only_repeat = PromptStrategies(False, True, False)
    assert training_prompt([MOCHI, CUP], scene, only_repeat, token_caption=caption) == (
        caption + ", <mochi> cat, <cup> mug")
    # Without a token caption the inline form is built from the concepts and the scene.
    assert training_prompt([MOCHI], "a garden", off) == "a photo of <mochi> cat in a garden"
    # No scene known: no background clause.
    assert training_prompt([MOCHI], "", PromptStrategies(True, False, True), "<g>") == (
        "<g> a photo of <mochi> cat")


def test_scene_from_caption_and_helpers():
    caption = "a photo of <mochi> cat and <cup> mug in a cosy living room."
    assert scene_from_caption(caption, [MOCHI, CUP]) == "in a cosy living room"
    assert bare_scene("in a cosy living room") == "a cosy living room"
    assert scene_from_caption("a photo of <mochi> cat", [MOCHI]) == ""
    assert class_prompt("owl") == "a photo of an owl" and class_prompt("cat") == "a photo of a cat"
    assert choose_global_token(["<mochi>"]) == "<composition>"
    assert choose_global_token(["<composition>", "<composition2>"]) == "<composition3>"


def test_config_validates_and_round_trips():
    cfg = TrainConfig(steps=10, masked_loss=True)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.effective_learning_rate == pytest.approx(2e-5)
    with pytest.raises(InputError, match=r"Unknown training setting.*stepz"):
        TrainConfig.from_dict({"stepz": 3})
    with pytest.raises(InputError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(InputError, match="resolution must be a multiple of 8"):
        TrainConfig(resolution=100)
    with pytest.raises(InputError, match="global_token must be true or false"):
        TrainConfig(global_token="yes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def project_template(tmp_path_factory) -> Path:
    return make_train_project(tmp_path_factory.mktemp("train") / "template")


@pytest.fixture
def project_dir(project_template, tmp_path) -> Path:
    import shutil

    target = tmp_path / "project"
    shutil.copytree(project_template, target)
    return target


def _model(tiny_models, tokens, words, **changes):
    from engine.models.loaders import load_text_to_image
    from engine.train.custom_diffusion import CustomDiffusionModel
    from engine.train.precision import plan_precision

    cfg = TrainConfig(**{"learning_rate": 1e-3, "resolution": 64, **changes})
    pipe = load_text_to_image(tiny_models["base"])
    return CustomDiffusionModel(pipe, tokens, words, plan_precision("cpu", "auto"), cfg), cfg


def _data(project_dir, model, cfg, tmp_path, class_sets=None):
    from engine.jobs import inline_context
    from engine.project import Project
    from engine.train.data import take_snapshot
    from engine.train.runner import prepare_data, training_prompts
    from engine.train.runs import RunPaths

    with Project.open(project_dir) as project:
        snapshot = take_snapshot(project)
        prompts = training_prompts(snapshot, cfg, "<composition>")
        return snapshot, prepare_data(project, RunPaths(tmp_path / "run"), model, snapshot, cfg,
                                      prompts, class_sets, inline_context())


# --------------------------------------------------------------------------- snapshot


def test_snapshot_lists_kept_items_with_scene_from_layout_or_caption(project_dir):
    from engine.project import Project
    from engine.train.data import DatasetSnapshot, take_snapshot

    with Project.open(project_dir) as project:
        snapshot = take_snapshot(project)
        again = take_snapshot(project)
    assert len(snapshot.items) == 4  # the rejected item is left out
    assert [c.token for c in snapshot.concepts] == ["<mochi>", "<cup>", "<rocket>"]
    assert snapshot.items[0].tokens == ("<mochi>", "<cup>")
    assert snapshot.items[0].scene == "on a wooden table in a sunlit kitchen"  # layout
    assert snapshot.items[2].scene == "in a cosy living room"  # caption, no layout
    assert again.snapshot_id == snapshot.snapshot_id
    assert DatasetSnapshot.from_json(snapshot.to_json(), "x") == snapshot
    tampered = snapshot.to_json().replace("a garden", "a desert")
    with pytest.raises(InputError, match="does not match its id"):
        DatasetSnapshot.from_json(tampered, "x")


def test_data_order_is_a_permutation_per_epoch_and_repeatable():
    from engine.train.data import DataOrder

    order = DataOrder(5, seed=3)
    first = order.indices(0, 5)
    assert sorted(first) == list(range(5)) and sorted(order.indices(5, 5)) == list(range(5))
    assert DataOrder(5, seed=3).indices(3, 4) == order.indices(3, 4)  # straddles an epoch
    assert [DataOrder(5, seed=s).indices(0, 5) for s in range(4)] != [first] * 4


# --------------------------------------------------------------------------- what trains


def test_tokens_start_from_class_words_and_only_kv_and_new_rows_change(
        tiny_models, project_dir, tmp_path):
    import torch

    tokens = ["<mochi>", "<cup>", "<rocket>", "<composition>"]
    words = ["cat", "mug", "rocket", "photo"]
    model, cfg = _model(tiny_models, tokens, words, weight_decay=0.5)
    base_rows = model.embedding.base.weight.detach().clone()
    for i, word in enumerate(words):
        ids = model.tokenizer(word, add_special_tokens=False).input_ids
        assert torch.equal(model.embedding.new_rows[i].detach(), base_rows[ids].mean(0))
    assert model.token_ids == tuple(range(49408, 49412))
    before = {name: {k: v.detach().clone() for k, v in m.state_dict().items()}
              for name, m in (("unet", model.unet), ("vae", model.vae),
                              ("text", model.text_encoder))}
    rows_before = model.embedding.new_rows.detach().clone()
    _snapshot, data = _data(project_dir, model, cfg, tmp_path)
    for step in range(3):
        model.train_step(step, data)
    changed = {name: sorted(k for k, v in m.state_dict().items()
                            if k in before[name] and not torch.equal(v, before[name][k]))
               for name, m in (("unet", model.unet), ("vae", model.vae),
                               ("text", model.text_encoder))}
    assert changed["vae"] == []
    # In the text encoder only the learned rows: not the embedding matrix, nothing else.
    assert [k.split(".")[-2:] for k in changed["text"]] == [["token_embedding", "new_rows"]]
    assert changed["unet"] == sorted(f"{name}.weight" for name in model.kv_layers)
    assert all(name.split(".")[-2] == "attn2" for name in model.kv_layers)
    assert torch.equal(model.embedding.base.weight, base_rows)
    moved = (model.embedding.new_rows.detach() - rows_before).abs().amax(dim=1)
    # Every learned row moved, the last included (prompts name all three concepts and the
    # global token; the last row is the global token's).
    assert bool((moved > 0).all()), moved


def test_loss_on_a_fixed_batch_goes_down(tiny_models, project_dir, tmp_path):
    import torch

    model, cfg = _model(tiny_models, ["<mochi>", "<cup>", "<rocket>", "<composition>"],
                        ["cat", "mug", "rocket", "photo"], batch_size=4, hflip=False)
    _snapshot, data = _data(project_dir, model, cfg, tmp_path)
    fixed = data.batch(0, 0, torch.Generator().manual_seed(1))

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(model.loss(fixed, torch.Generator().manual_seed(2))[0])

    start = fixed_loss()
    for step in range(50):
        model.train_step(step, data)
    end = fixed_loss()
    assert end < 0.9 * start, (start, end)


def test_masked_loss_weights_objects(tiny_models, project_dir, tmp_path):
    import torch

    model, cfg = _model(tiny_models, ["<mochi>", "<cup>", "<rocket>", "<composition>"],
                        ["cat", "mug", "rocket", "photo"], masked_loss=True,
                        mask_background_weight=0.25)
    _snapshot, data = _data(project_dir, model, cfg, tmp_path)
    assert data.weights is not None and data.weights.shape[1:] == (2, 1, 8, 8)
    # Item 0: two objects side by side over rows 2..5 of the 8x8 latent; mirrored too.
    weights = data.weights[0, 0, 0]
    assert torch.allclose(weights[3], torch.ones(8)) and torch.allclose(weights[0],
                                                                        torch.full((8,), 0.25))
    assert torch.equal(data.weights[0, 1], data.weights[0, 0].flip(-1))
    from engine.train.diffusion_step import weighted_mse

    # Worked on paper: channel 0 [[1, 2], [3, 4]] and channel 1 [[5, 6], [7, 8]], weights
    # [[1, 0], [0.5, 0.5]] for both. Channel 0: 1 + 0 + 1.5 + 2 = 4.5; channel 1:
    # 5 + 0 + 3.5 + 4 = 12.5; the weights sum to 2 per channel: (4.5 + 12.5) / 4 = 4.25.
    error = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]])
    w = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])
    assert float(weighted_mse(error[:, :1], w)) == pytest.approx(2.25)
    assert float(weighted_mse(error, w)) == pytest.approx(4.25)
    assert float(weighted_mse(error, torch.ones(1, 1, 2, 2))) == pytest.approx(4.5)  # the mean
    assert float(weighted_mse(error, torch.zeros(1, 1, 2, 2))) == 0.0  # no weight: 0, not nan


def test_steps_use_the_caches_not_the_vae(tiny_models, project_dir, tmp_path):
    """The VAE never runs in a step, and the text encoder only for the instance prompts."""
    import torch

    model, cfg = _model(tiny_models, ["<mochi>", "<cup>", "<rocket>", "<composition>"],
                        ["cat", "mug", "rocket", "photo"], prior_preservation=True)
    class_dir = tmp_path / "class"
    class_dir.mkdir()
    from PIL import Image

    paths = []
    for i in range(2):
        paths.append(class_dir / f"{i}.png")
        Image.new("RGB", (64, 64), (40 * i, 90, 200)).save(paths[-1])
    _snapshot, data = _data(project_dir, model, cfg, tmp_path, {"cat": paths, "mug": paths})
    calls = {"vae": 0, "text_rows": 0}

    def vae_hook(*_args):
        calls["vae"] += 1

    def text_hook(_module, args, _out):
        calls["text_rows"] += args[0].shape[0]

    model.vae.encoder.register_forward_hook(vae_hook)
    model.text_encoder.register_forward_hook(text_hook)
    record = model.train_step(0, data)
    assert calls == {"vae": 0, "text_rows": cfg.batch_size}
    assert "prior_loss" in record and record["loss"] == pytest.approx(
        record["instance_loss"] + record["prior_loss"], rel=1e-5)
    assert data.prior is not None and data.prior.states.shape[0] == 2  # "cat", "mug" prompts
    assert not data.prior.states.requires_grad
    assert data.latent_mean.shape == (4, 2, 4, 8, 8)  # every item, as is and mirrored
    assert not torch.equal(data.latent_mean[:, 0], data.latent_mean[:, 1])


def test_too_long_prompts_are_reported(tiny_models, project_dir, tmp_path):
    from engine.jobs import JobLog, inline_context
    from engine.project import Project
    from engine.train.data import take_snapshot
    from engine.train.runner import prepare_data
    from engine.train.runs import RunPaths

    model, cfg = _model(tiny_models, ["<mochi>"], ["cat"])
    logs = []
    with Project.open(project_dir) as project:
        snapshot = take_snapshot(project)
        prompts = ["<mochi> cat " + "very " * 80 + "long"] + ["<mochi> cat"] * 3
        data = prepare_data(project, RunPaths(tmp_path / "run"), model, snapshot, cfg, prompts,
                            None, inline_context(logs.append))
    assert data.input_ids.shape == (4, 77)
    warnings = [e.text for e in logs if isinstance(e, JobLog) and e.level == "warning"]
    assert len(warnings) == 1 and "1 training prompt(s) longer" in warnings[0]


# --------------------------------------------------------------------------- checkpoints


def test_checkpoints_are_atomic_pruned_and_stale_temps_removed(tmp_path):
    import torch

    from engine.train import checkpoints as ckpt

    folder = tmp_path / "checkpoints"
    for step in (4, 8, 12):
        ckpt.save_checkpoint(folder, step, {"w": torch.full((2,), float(step))},
                             {"state": {}, "param_groups": []}, {"seed": 0}, keep=2)
    assert [c.step for c in ckpt.list_checkpoints(folder)] == [8, 12]
    (folder / "step-0000016").mkdir()  # a folder without state.json is not a checkpoint
    dead = folder / ".step-0000020.tmp-999999999-abcd"  # a killed writer's half checkpoint
    dead.mkdir()
    assert ckpt.latest_checkpoint(folder).step == 12
    assert ckpt.remove_stale_temp_folders(folder) == 1 and not dead.exists()
    weights, optimizer, state = ckpt.load_checkpoint(ckpt.latest_checkpoint(folder))
    assert float(weights["w"][0]) == 12.0 and state == {"seed": 0, "step": 12}
    assert optimizer == {"state": {}, "param_groups": []}


# --------------------------------------------------------------------------- the job


def _train(project_dir, config, run_id=None, sink=None, cancel=None):
    from engine.jobs import run_inline

    params = {"project": str(project_dir), "profile": "tiny", "device": "cpu",
              "config": config, "run_id": run_id}
    return run_inline("train", params, sink, cancel)


def _export_tensors(export_dir: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for path in sorted(Path(export_dir).glob("*.safetensors")):
        out.update({f"{path.name}:{k}": v for k, v in load_file(str(path)).items()})
    return out


def _losses(run_dir: Path) -> list[tuple[int, float]]:
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines) if "loss" in r]


def test_train_job_records_run_and_exports(tiny_models, project_dir):
    from engine.jobs import JobFinished, JobPreview, JobProgress
    from engine.project import Project

    events = []
    end = _train(project_dir, FAST, sink=events.append)
    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    result = end.result
    run_dir = Path(result.run_dir)
    with Project.open(project_dir) as project:
        run = project.run(result.run_id)
    assert run.status == "finished" and run.kind == "custom-diffusion"
    assert run.output_dir == f"runs/{run.id}" and run.metrics_file.endswith("metrics.jsonl")
    assert run.config["train"]["resolution"] == 64 and run.config["global_token"]
    assert run.dataset_snapshot and (run_dir / "dataset.json").is_file()
    assert [s for s, _ in _losses(run_dir)] == list(range(1, 13))
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(r["lr"] == pytest.approx(2e-3) for r in records if "loss" in r)
    samples = [r["sample"] for r in records if "sample" in r]
    assert samples == ["samples/step-0000006.png", "samples/step-0000012.png"]
    assert all((run_dir / s).is_file() for s in samples)
    assert sum(isinstance(e, JobPreview) for e in events) == 2
    progress = [e for e in events if isinstance(e, JobProgress) and e.total == 12]
    assert progress[-1].step == 12 and any(e.eta_seconds is not None for e in progress)
    assert [p.name for p in sorted((run_dir / "checkpoints").iterdir())] == [
        "step-0000008", "step-0000012"]
    manifest = json.loads((run_dir / "export" / "mycanvas_concepts.json").read_text())
    assert manifest["token_files"] == {"<mochi>": "mochi.safetensors", "<cup>": "cup.safetensors",
                                       "<rocket>": "rocket.safetensors",
                                       "<composition>": "composition.safetensors"}
    assert manifest["example_prompt"].startswith("<composition> a photo of <mochi> cat")


def test_export_loads_in_plain_diffusers(tiny_models, project_dir):
    import torch
    from diffusers.models.attention_processor import CustomDiffusionAttnProcessor

    from engine.models.loaders import load_text_to_image
    from engine.train.export import WEIGHTS_NAME, apply_concepts, read_manifest

    end = _train(project_dir, {**FAST, "steps": 4, "sample_every": 0})
    export = Path(end.result.export_dir)
    manifest = read_manifest(export)
    trained = _export_tensors(export)

    pipe = load_text_to_image(tiny_models["base"])
    pipe.unet.load_attn_procs(str(export), weight_name=WEIGHTS_NAME, _pipeline=pipe)
    assert all(isinstance(p, CustomDiffusionAttnProcessor)
               for p in pipe.unet.attn_processors.values())
    for token, file in manifest["token_files"].items():
        pipe.load_textual_inversion(str(export / file))
        token_id = pipe.tokenizer.convert_tokens_to_ids(token)
        row = pipe.text_encoder.get_input_embeddings().weight[token_id]
        assert torch.equal(row, trained[f"{file}:{token}"])
    ours = load_text_to_image(tiny_models["base"])
    assert apply_concepts(ours, export) == list(manifest["token_files"])
    base = load_text_to_image(tiny_models["base"])
    prompt = manifest["example_prompt"]
    outputs = []
    for p in (pipe, ours, base):
        with torch.no_grad():
            ids = p.tokenizer(prompt, padding="max_length", max_length=77,
                              return_tensors="pt").input_ids
            states = p.text_encoder(ids)[0]
            latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
            outputs.append(p.unet(latents, torch.tensor([500]), states).sample)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(outputs[0], outputs[2])  # the concepts do change the output
    image = pipe(prompt, num_inference_steps=2, height=64, width=64,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)


def test_cancel_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(
        tiny_models, project_dir, tmp_path):
    import shutil

    from engine.jobs import CancelToken, JobCancelled, JobFinished, JobProgress
    from engine.project import Project

    config = {**FAST, "steps": 10, "checkpoint_every": 4, "sample_every": 0}
    twin = tmp_path / "twin"
    shutil.copytree(project_dir, twin)
    straight = _train(twin, config)
    assert isinstance(straight, JobFinished)

    token = CancelToken()

    def cancel_at_six(event):
        if isinstance(event, JobProgress) and event.total == 10 and event.step == 6:
            token.cancel()

    end = _train(project_dir, config, sink=cancel_at_six, cancel=token)
    assert isinstance(end, JobCancelled)
    with Project.open(project_dir) as project:
        run = project.runs("custom-diffusion")[-1]
    assert run.status == "cancelled"
    run_dir = project_dir / run.output_dir
    # Cancelled while step 7 ran: noticed at the next step boundary, its 7 steps are kept.
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "step-0000004", "step-0000007"]
    resumed = _train(project_dir, {}, run_id=run.id)
    assert isinstance(resumed, JobFinished) and resumed.result.resumed_from == 7
    assert _losses(run_dir) == _losses(Path(straight.result.run_dir))
    a, b = _export_tensors(run_dir / "export"), _export_tensors(straight.result.export_dir)
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_resume_refuses_changed_settings(project_dir, tiny_models):
    end = _train(project_dir, {**FAST, "steps": 2, "sample_every": 0})
    run_id = end.result.run_id
    failed = _train(project_dir, {"learning_rate": 0.1}, run_id=run_id)
    assert "only" in failed.reason and "learning_rate" in failed.reason


def test_resume_after_the_worker_is_killed_repeats_the_uninterrupted_run(
        tiny_models, project_dir, tmp_path):
    """SIGKILL the worker mid-run; the resumed run ends bit for bit where an uninterrupted
    run with the same seed ends (same device, same thread count)."""
    import shutil


    config = {**FAST, "steps": 60, "checkpoint_every": 10, "sample_every": 0}
    twin = tmp_path / "twin"
    shutil.copytree(project_dir, twin)
    params = {"project": str(project_dir), "profile": "tiny", "device": "cpu", "config": config}
    _result, run_dir = kill_then_resume("train", params, project_dir, "custom-diffusion",
                                        total=60, kill_from=25, saved=range(20, 60))
    straight = _train(twin, config)
    assert _losses(run_dir) == _losses(Path(straight.result.run_dir))
    a, b = _export_tensors(run_dir / "export"), _export_tensors(straight.result.export_dir)
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_prior_preservation_makes_and_reuses_class_images(tiny_models, project_dir):
    from engine.jobs import JobFinished

    config = {**FAST, "steps": 2, "sample_every": 0, "prior_preservation": True,
              "class_images_per_concept": 2, "class_image_steps": 2}
    first = _train(project_dir, config)
    assert isinstance(first, JobFinished), getattr(first, "detail", first)
    made = sorted((project_dir / "runs" / "class-images").rglob("*.png"))
    assert len(made) == 6  # 2 each of cat, mug, rocket
    stamps = [p.stat().st_mtime_ns for p in made]
    second = _train(project_dir, config)
    assert isinstance(second, JobFinished)
    assert [p.stat().st_mtime_ns for p in made] == stamps  # reused, not remade
    records = (Path(second.result.run_dir) / "metrics.jsonl").read_text().splitlines()
    assert all("prior_loss" in json.loads(line) for line in records)


def test_no_items_is_a_clear_error(tmp_path, tiny_models):
    from engine.project import Project

    Project.create(tmp_path / "empty", "Empty").close()
    end = _train(tmp_path / "empty", FAST)
    assert "no accepted dataset items" in end.reason


def test_cli_train_runs_and_resume_needs_an_unfinished_run(tiny_models, project_dir):
    repo = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "desktop_app.launcher", "train", str(project_dir),
           "--profile", "tiny", "--device", "cpu", "--steps", "2", "--sample-every", "0",
           "--lr", "1e-3", "--no-repeat-tokens"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=repo, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Run 1: 2 steps" in proc.stdout and "export" in proc.stdout
    again = subprocess.run([*cmd[:5], "--resume"], capture_output=True, text=True, cwd=repo,
                           timeout=300)
    assert again.returncode == 1
    assert "no unfinished training run" in again.stderr
    from engine.project import Project

    with Project.open(project_dir) as project:
        cfg = project.run(1).config["train"]
    assert cfg["repeat_concept_tokens"] is False and cfg["steps"] == 2


# --------------------------------------------------------------------------- full size


@pytest.mark.slow
def test_full_size_sd15_architecture_trains_one_step(tmp_path):
    """SD 1.5's UNet/VAE/CLIP architecture with random weights: shapes, memory, export."""
    import numpy as np
    import torch
    from PIL import Image
    from sd15_text2image import build_sd15_pipeline

    from engine.train.custom_diffusion import CustomDiffusionModel
    from engine.train.data import TrainingData
    from engine.train.export import export_concepts
    from engine.train.precision import plan_precision

    pipe = build_sd15_pipeline()
    cfg = TrainConfig(batch_size=1, resolution=512, gradient_checkpointing=True)
    model = CustomDiffusionModel(pipe, ["<mochi>"], ["cat"], plan_precision("cpu", "auto"), cfg)
    assert len(model.kv_layers) == 32  # 16 cross-attention layers, k and v
    from engine.train.data import encode_latent_stats

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (512, 512, 3), np.uint8))
    mean, std = encode_latent_stats(model.vae, [image], "cpu", torch.float32)
    ids = model.tokenize(["<mochi> cat on a table"])
    data = TrainingData(mean, std, ids, None, 1, 1, 0, True)
    record = model.train_step(0, data)
    assert record["loss"] > 0 and record["grad_norm"] > 0
    export_concepts(model, tmp_path / "export", {"run_id": 0})
    assert (tmp_path / "export" / "mochi.safetensors").stat().st_size > 3000


def test_a_preview_is_cancelled_between_its_denoising_steps(project_dir):
    """Previews run through the pipeline runner: a cancel lands at the preview's next
    denoising step, not after the whole preview, and the finished training step is kept."""
    from engine.jobs import CancelToken, JobCancelled, JobProgress
    from engine.project import Project

    token = CancelToken()

    def sink(event):
        # Cancel as step 1 starts: nothing checks between its optimiser step and its
        # preview, so the first place the cancel can land is inside the preview.
        if isinstance(event, JobProgress) and event.message.startswith("step 1/"):
            token.cancel()

    end = _train(project_dir, {**FAST, "steps": 4, "sample_every": 1, "sample_steps": 6},
                 sink=sink, cancel=token)
    assert isinstance(end, JobCancelled)
    with Project.open(project_dir) as project:
        run = project.runs()[-1]
        run_dir = project.abspath(run.output_dir)
    assert run.status == "cancelled"
    assert not list((run_dir / "samples").glob("*.png"))  # the preview was never finished
    assert [c.name for c in (run_dir / "checkpoints").iterdir()] == ["step-0000001"]
