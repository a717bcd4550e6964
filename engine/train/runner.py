"""One Custom Diffusion run from start (or its last checkpoint) to its export: its caches,
the trainer the loop drives (engine.train.loop), and the export. The run's folder is
engine.train.runs' RunPaths, plus cache/latents.safetensors (the cached latent statistics,
re-used by a resume).

Order of work: class images (prior preservation, made by the untouched base model) → the
model is set up for training → caches → the loop (resume, steps, checkpoints, previews,
cancel) → export. On a CPU with the same thread count a resumed run repeats the
uninterrupted one bit for bit (tested): every random draw is derived from (seed, step), the
optimiser state is restored exactly, and the cached latents are read back as stored. On CUDA
some kernels (cuDNN convolution backward, atomics) are not deterministic, so the two agree
only to float rounding, as two uninterrupted CUDA runs do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from engine.atomic import atomic_write_bytes
from engine.device import inference_autocast
from engine.errors import InputError, first_line
from engine.jobs.pipelines import PipelineRunner
from engine.project import Project
from engine.train import checkpoints as ckpt
from engine.train.config import TrainConfig
from engine.train.custom_diffusion import CustomDiffusionModel
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
from engine.train.loop import LoopSchedule, MetricsLog, TrainerState, run_loop
from engine.train.precision import Precision
from engine.train.prompts import (
    GLOBAL_TOKEN_INIT_WORD,
    PromptStrategies,
    class_prompt,
    training_prompt,
)
from engine.train.runs import RunPaths

if TYPE_CHECKING:
    from engine.device import DevicePlan

# Settings a resume may change: they do not enter the arithmetic of a step.
RESUMABLE_CHANGES = frozenset({"steps", "checkpoint_every", "keep_checkpoints", "sample_every",
                               "sample_steps"})
LATENT_CACHE_VERSION = "1"


@dataclass
class RunSetup:
    """What a run needs besides the project: the model pipeline and how it runs."""

    pipe: Any
    precision: Precision
    model_key: str  # identifies the base model (class images are shared per model)
    base_model: dict[str, Any]  # profile and folder, for the manifest
    plan: DevicePlan | None = None  # the device plan previews run under (None: no runner)


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
        except Exception as exc:  # SafetensorError is none of the usual kinds
            # A cache: what it held is made again, and the file replaced.
            ctx.log(f"{paths.latent_cache} could not be read ({first_line(exc, 120)}); "
                    "encoding the images again", "warning")
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


class CustomDiffusionTrainer:
    """The model and its cached data, as the trainer engine.train.loop drives."""

    def __init__(self, model: CustomDiffusionModel, data: TrainingData, cfg: TrainConfig,
                 snapshot: DatasetSnapshot, preview_prompt: str,
                 pipeline: PipelineRunner | None = None,
                 check_cancelled: Callable[[], None] | None = None) -> None:
        self.model, self.data, self.cfg = model, data, cfg
        self.snapshot, self.preview_prompt = snapshot, preview_prompt
        # Previews run like every pipeline call: cancel per step, a retry on out-of-memory.
        self.pipeline, self.check_cancelled = pipeline, check_cancelled

    def train_step(self, step: int) -> dict[str, float]:
        return self.model.train_step(step, self.data)

    def save_state(self, step: int) -> TrainerState:
        cfg, prior = self.cfg, self.data.prior
        state = {"config": cfg.to_dict(), "dataset_snapshot": self.snapshot.snapshot_id,
                 "tokens": list(self.model.tokens),
                 "rng": "derived from (seed, step): nothing to restore",
                 "next_data_slot": step * cfg.gradient_accumulation * cfg.batch_size,
                 "scaler": self.model.optimiser.scaler_state(),
                 "items": len(self.snapshot.items),
                 "prior_images": 0 if prior is None else int(prior.latent_mean.shape[0])}
        return TrainerState(self.model.trainable_state(), self.model.optimiser.state_dict(),
                            state)

    def load_state(self, saved: TrainerState, where: Path) -> None:
        cfg = self.cfg
        old = TrainConfig.from_dict(saved.state.get("config")).to_dict()
        changed = {k for k, v in old.items() if cfg.to_dict()[k] != v} - RESUMABLE_CHANGES
        if changed or saved.state.get("dataset_snapshot") != self.snapshot.snapshot_id:
            raise InputError(f"{where} was made with other settings "
                             f"({', '.join(sorted(changed)) or 'dataset'}); "
                             "start a new run instead")
        self.model.load_trainable_state(saved.trainable)
        self.model.optimiser.load_state(saved.optimiser, saved.state.get("scaler"))

    def preview(self, step: int) -> tuple[Any, str]:
        cfg = self.cfg
        seed = derived_seed(cfg.seed, "sample") % 2**31
        resolution = int(cfg.resolution or 0)
        if self.pipeline is None:
            return self.model.sample(self.preview_prompt, seed, cfg.sample_steps,
                                     resolution), self.preview_prompt
        step_end = self.pipeline.step_callback(None, self.check_cancelled, cfg.sample_steps)

        def sample(plan: DevicePlan) -> Any:
            with inference_autocast(plan):  # bf16 compute where the plan says so
                return self.model.sample(self.preview_prompt, seed, cfg.sample_steps,
                                         resolution, step_end)

        return self.pipeline.run(sample), self.preview_prompt

    def go_leaner(self) -> str | None:
        if self.cfg.gradient_checkpointing:
            return None
        self.model.unet.enable_gradient_checkpointing()
        return "gradient checkpointing (slower, leaner)"


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
    # Made first, while the pipeline is still the base model; bf16 compute where the plan says.
    if cfg.prior_preservation:
        with inference_autocast(setup.plan):
            class_sets = {
                word: ensure_class_images(project, setup.pipe, word,
                                          cfg.class_images_per_concept, cfg.class_image_steps,
                                          resolution, cfg.seed, setup.model_key, ctx.progress)
                for word in sorted({c.class_word for c in snapshot.concepts})}
    model = CustomDiffusionModel(setup.pipe, tokens, init_words, setup.precision, cfg)
    prompts = training_prompts(snapshot, cfg, global_token or "")
    data = prepare_data(project, paths, model, snapshot, cfg, prompts, class_sets, ctx)
    pipeline = None
    if setup.plan is not None:
        pipeline = PipelineRunner(setup.pipe, setup.plan, getattr(ctx, "models", None),
                                  ctx.log, memory_savers=False)
    trainer = CustomDiffusionTrainer(model, data, cfg, snapshot, prompts[0], pipeline,
                                     ctx.check_cancelled)
    schedule = LoopSchedule(cfg.steps, cfg.checkpoint_every, cfg.keep_checkpoints,
                            cfg.sample_every)
    start = run_loop(ctx, trainer, schedule, paths)
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
        "training_precision": setup.precision.computes_in,
    }
    export_concepts(model, paths.export, manifest)
    losses = [r["loss"] for r in MetricsLog(paths.metrics).records() if "loss" in r]
    return {"run_id": run_id, "steps": cfg.steps, "resumed_from": start,
            "final_loss": losses[-1] if losses else None,
            "export_dir": str(paths.export), "run_dir": str(paths.root)}
