"""One Custom Diffusion run from start (or its last checkpoint) to its export.

    runs/<run id>/
      dataset.json        the dataset snapshot the run trains on
      metrics.jsonl       one line per step (loss, lr, grad norm, seconds) and per sample
      checkpoints/        step-NNNNNNN/ folders (engine.train.checkpoints)
      samples/            preview images, step-NNNNNNN.png
      cache/latents.safetensors   the cached latent statistics (re-used by a resume)
      export/             the learned concepts (engine.train.export)

Order of work: class images (prior preservation, made by the untouched base model) → the
model is set up for training → caches → resume from the last complete checkpoint, if any →
steps. `ctx.progress` at every step boundary is also the cancel check: a cancel saves a
checkpoint of the steps done and ends the run as cancelled; a killed run resumes from its
last checkpoint. On a CPU with the same thread count the resumed run repeats the
uninterrupted one bit for bit (tested): every random draw is derived from (seed, step), the
optimiser state is restored exactly, and the cached latents are read back as stored. On CUDA
some kernels (cuDNN convolution backward, atomics) are not deterministic, so the two agree
only to float rounding, as two uninterrupted CUDA runs do.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.atomic import atomic_write_bytes, atomic_write_text
from engine.errors import Cancelled, InputError
from engine.project import Project
from engine.train import checkpoints as ckpt
from engine.train.config import TrainConfig
from engine.train.custom_diffusion import CustomDiffusionModel, Precision
from engine.train.data import (
    DatasetSnapshot,
    PriorData,
    TrainingData,
    derived_seed,
    encode_latent_stats,
    ensure_class_images,
    latent_masks,
    square_image,
)
from engine.train.export import export_concepts
from engine.train.prompts import (
    GLOBAL_TOKEN_INIT_WORD,
    PromptStrategies,
    class_prompt,
    training_prompt,
)

# Settings a resume may change: they do not enter the arithmetic of a step.
RESUMABLE_CHANGES = frozenset({"steps", "checkpoint_every", "keep_checkpoints", "sample_every",
                               "sample_steps"})
LATENT_CACHE_VERSION = "1"


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @classmethod
    def of(cls, project: Project, run_id: int) -> RunPaths:
        return cls(project.root / "runs" / str(run_id))

    @property
    def rel(self) -> str:
        return f"runs/{self.root.name}"

    dataset = property(lambda self: self.root / "dataset.json")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    checkpoints = property(lambda self: self.root / "checkpoints")
    samples = property(lambda self: self.root / "samples")
    latent_cache = property(lambda self: self.root / "cache" / "latents.safetensors")
    export = property(lambda self: self.root / "export")


@dataclass
class RunSetup:
    """What a run needs besides the project: the model pipeline and how it runs."""

    pipe: Any
    precision: Precision
    model_key: str  # identifies the base model (class images are shared per model)
    base_model: dict[str, Any]  # profile and folder, for the manifest


# --------------------------------------------------------------------------- metrics


class MetricsLog:
    """metrics.jsonl: appended line by line; on resume, cut back to the checkpoint's step."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> list[dict[str, Any]]:
        out = []
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a line torn by a kill
        return out

    def cut_after(self, step: int) -> None:
        kept = [r for r in self.records() if r.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


# --------------------------------------------------------------------------- caches


def training_prompts(snapshot: DatasetSnapshot, cfg: TrainConfig, global_token: str) -> list[str]:
    strategies = PromptStrategies(cfg.global_token, cfg.repeat_concept_tokens,
                                  cfg.separate_background)
    return [training_prompt(snapshot.concept_refs(item.tokens), item.scene, strategies,
                            global_token, item.token_caption) for item in snapshot.items]


def _latents(project: Project, paths: RunPaths, model: CustomDiffusionModel,
             snapshot: DatasetSnapshot, resolution: int, ctx: Any) -> tuple[Any, Any]:
    """Latent statistics of every item and its mirror: from the run's cache, else the VAE."""
    from safetensors import safe_open
    from safetensors.torch import save

    key = f"{LATENT_CACHE_VERSION}:{snapshot.snapshot_id}:{resolution}"
    if paths.latent_cache.is_file():
        try:
            with safe_open(str(paths.latent_cache), "pt") as f:
                if (f.metadata() or {}).get("key") == key:
                    return f.get_tensor("mean"), f.get_tensor("std")
        except (OSError, ValueError, RuntimeError, KeyError):
            pass  # unreadable: encode again
    images = [square_image(project.abspath(i.image_file), resolution) for i in snapshot.items]
    mean, std = encode_latent_stats(model.vae, images, model.precision.device,
                                    model.precision.weight_dtype,
                                    lambda i, n, m: ctx.progress(i, n, f"{m} {i + 1}/{n}"))
    tensors = {"mean": mean.contiguous(), "std": std.contiguous()}
    atomic_write_bytes(paths.latent_cache, save(tensors, metadata={"key": key}))
    return mean, std


def _prior(model: CustomDiffusionModel, class_sets: dict[str, list[Path]], resolution: int,
           ctx: Any) -> PriorData:
    words = sorted(class_sets)
    images, owners = [], []
    for k, word in enumerate(words):
        for path in class_sets[word]:
            images.append(square_image(path, resolution))
            owners.append(k)
    mean, std = encode_latent_stats(model.vae, images, model.precision.device,
                                    model.precision.weight_dtype,
                                    lambda i, n, m: ctx.progress(i, n, f"encoding class image "
                                                                       f"{i + 1}/{n}"))
    with torch.no_grad():
        states = model.encode_text(model.tokenize([class_prompt(w) for w in words]))
    return PriorData(mean, std, torch.tensor(owners), states.detach())


def prepare_data(project: Project, paths: RunPaths, model: CustomDiffusionModel,
                 snapshot: DatasetSnapshot, cfg: TrainConfig, prompts: list[str],
                 class_sets: dict[str, list[Path]] | None, ctx: Any) -> TrainingData:
    resolution = int(cfg.resolution or 0)
    mean, std = _latents(project, paths, model, snapshot, resolution, ctx)
    weights = None
    if cfg.masked_loss:
        masks = latent_masks(project, snapshot.items, resolution, mean.shape[-1])
        weights = cfg.mask_background_weight + (1 - cfg.mask_background_weight) * masks
    ids = model.tokenize(prompts)
    limit = model.tokenizer.model_max_length
    long = [p for p in prompts if len(model.tokenizer(p).input_ids) > limit]
    if long:
        ctx.log(f"{len(long)} training prompt(s) longer than the text encoder's {limit} "
                f"tokens were cut, e.g. {long[0]!r}", "warning")
    prior = _prior(model, class_sets, resolution, ctx) if class_sets else None
    return TrainingData(mean, std, ids, weights, cfg.batch_size, cfg.gradient_accumulation,
                        cfg.seed, cfg.hflip, prior)


# --------------------------------------------------------------------------- the run


def _state_json(cfg: TrainConfig, snapshot: DatasetSnapshot, model: CustomDiffusionModel,
                data: TrainingData, step: int) -> dict[str, Any]:
    return {"config": cfg.to_dict(), "dataset_snapshot": snapshot.snapshot_id,
            "tokens": list(model.tokens),
            "rng": "derived from (seed, step): nothing to restore",
            "next_data_slot": step * cfg.gradient_accumulation * cfg.batch_size,
            "scaler": model.scaler.state_dict() if model.scaler else None,
            "items": len(snapshot.items), "prior_images":
                0 if data.prior is None else int(data.prior.latent_mean.shape[0])}


def _resume(paths: RunPaths, model: CustomDiffusionModel, cfg: TrainConfig,
            snapshot: DatasetSnapshot, metrics: MetricsLog, ctx: Any) -> int:
    ckpt.remove_stale_temp_folders(paths.checkpoints)
    last = ckpt.latest_checkpoint(paths.checkpoints)
    if last is None:
        metrics.cut_after(0)
        return 0
    trainable, optimizer_state, state = ckpt.load_checkpoint(last)
    saved = TrainConfig.from_dict(state.get("config"))
    changed = {k for k, v in saved.to_dict().items() if cfg.to_dict()[k] != v}
    if changed - RESUMABLE_CHANGES or state.get("dataset_snapshot") != snapshot.snapshot_id:
        raise InputError(f"{last.path} was made with other settings "
                         f"({', '.join(sorted(changed - RESUMABLE_CHANGES)) or 'dataset'}); "
                         "start a new run instead")
    model.load_trainable_state(trainable)
    model.optimizer.load_state_dict(optimizer_state)
    if model.scaler and state.get("scaler"):
        model.scaler.load_state_dict(state["scaler"])
    metrics.cut_after(last.step)
    ctx.log(f"Resuming from the checkpoint at step {last.step}")
    return last.step


def _save(paths: RunPaths, model: CustomDiffusionModel, cfg: TrainConfig,
          snapshot: DatasetSnapshot, data: TrainingData, step: int) -> None:
    ckpt.save_checkpoint(paths.checkpoints, step, model.trainable_state(),
                         model.optimizer.state_dict(),
                         _state_json(cfg, snapshot, model, data, step), cfg.keep_checkpoints)


def _preview(paths: RunPaths, model: CustomDiffusionModel, cfg: TrainConfig, prompt: str,
             step: int, metrics: MetricsLog, ctx: Any) -> None:
    image = model.sample(prompt, derived_seed(cfg.seed, "sample") % 2**31, cfg.sample_steps,
                         int(cfg.resolution or 0))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    name = f"{ckpt.checkpoint_name(step)}.png"
    atomic_write_bytes(paths.samples / name, buf.getvalue())
    metrics.append({"step": step, "sample": f"samples/{name}", "prompt": prompt})
    ctx.preview(image, f"step {step}: {prompt}")


def _step_with_oom_retry(model: CustomDiffusionModel, step: int, data: TrainingData,
                         ctx: Any) -> dict[str, float]:
    from engine.device import free_device_memory, is_out_of_memory

    try:
        return model.train_step(step, data)
    except Exception as exc:
        if not is_out_of_memory(exc) or model.config.gradient_checkpointing:
            raise
    model.optimizer.zero_grad(set_to_none=True)
    free_device_memory()
    ctx.log("Out of memory; continuing with gradient checkpointing (slower, leaner)",
            "warning")
    model.unet.enable_gradient_checkpointing()
    return model.train_step(step, data)


def run_custom_diffusion(ctx: Any, project: Project, run_id: int, cfg: TrainConfig,
                         snapshot: DatasetSnapshot, setup: RunSetup,
                         global_token: str | None) -> dict[str, Any]:
    """Train (or resume) run `run_id` to cfg.steps and export it; returns a summary."""
    paths = RunPaths.of(project, run_id)
    ckpt.remove_stale_temp_folders(paths.root)  # e.g. an export a kill left half-written
    resolution = int(cfg.resolution or 0)
    tokens = [c.token for c in snapshot.concepts]
    init_words = [c.class_word for c in snapshot.concepts]
    if global_token:
        tokens.append(global_token)
        init_words.append(GLOBAL_TOKEN_INIT_WORD)
    class_sets = None
    if cfg.prior_preservation:  # made first, while the pipeline is still the base model
        class_sets = {
            word: ensure_class_images(project, setup.pipe, word, cfg.class_images_per_concept,
                                      cfg.class_image_steps, resolution, cfg.seed,
                                      setup.model_key, ctx.progress)
            for word in sorted({c.class_word for c in snapshot.concepts})}
    model = CustomDiffusionModel(setup.pipe, tokens, init_words, setup.precision, cfg)
    prompts = training_prompts(snapshot, cfg, global_token or "")
    data = prepare_data(project, paths, model, snapshot, cfg, prompts, class_sets, ctx)
    metrics = MetricsLog(paths.metrics)
    start = _resume(paths, model, cfg, snapshot, metrics, ctx)
    saved_at, step, loss = start, start, float("nan")
    try:
        for step in range(start, cfg.steps):
            ctx.progress(step, cfg.steps, f"step {step + 1}/{cfg.steps}"
                         + (f", loss {loss:.4f}" if step > start else ""))
            began = time.perf_counter()
            record = _step_with_oom_retry(model, step, data, ctx)
            loss = record["loss"]
            metrics.append({"step": step + 1, **record,
                            "seconds": round(time.perf_counter() - began, 4)})
            done = step + 1
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                _save(paths, model, cfg, snapshot, data, done)
                saved_at = done
            if cfg.sample_every and done % cfg.sample_every == 0:
                _preview(paths, model, cfg, prompts[0], done, metrics, ctx)
        step = cfg.steps
    except Cancelled:
        if step > saved_at:  # keep what was done: the run can be resumed from here
            _save(paths, model, cfg, snapshot, data, step)
        raise
    ctx.progress(cfg.steps, cfg.steps, "exporting")
    manifest = {
        "run_id": run_id, "steps": cfg.steps, "resolution": resolution,
        "dataset_snapshot": snapshot.snapshot_id, "base_model": setup.base_model,
        "concepts": [{"name": c.name, "token": c.token, "class_word": c.class_word}
                     for c in snapshot.concepts],
        "global_token": global_token, "example_prompt": prompts[0],
        "prompt_strategies": {"global_token": cfg.global_token,
                              "repeat_concept_tokens": cfg.repeat_concept_tokens,
                              "separate_background": cfg.separate_background},
        "config": cfg.to_dict(),
    }
    export_concepts(model, paths.export, manifest)
    losses = [r["loss"] for r in metrics.records() if "loss" in r]
    return {"run_id": run_id, "steps": cfg.steps, "resumed_from": start,
            "final_loss": losses[-1] if losses else None,
            "export_dir": str(paths.export), "run_dir": str(paths.root)}
