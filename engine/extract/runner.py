"""One EM extraction run from its start (or last checkpoint) to its export and masks.

Order of work: the photo into the model's square and through the VAE (cached for the run)
→ iteration 0's masks (engine.extract.initial; stored in masks/iter-000, read back by a
resumed run) → engine.train's loop driving `ExtractionTrainer`: M-steps, and after the last
step of each iteration the E-step (engine.extract.estep), whose masks the next steps train
with; the loop stops early when the masks converged → the export, in exactly the fine-tuning
stage's format (engine.train.export_concepts) → the final masks on the project
(engine.extract.outputs).

Resume: a checkpoint holds the token rows, the k/v weights, the optimiser of the phase it
was in, and the current masks (bool, exact); the step's randomness derives from (seed,
step) and the E-step's from (seed, iteration), so a resumed run repeats an uninterrupted one
bit for bit on the same device and thread count (tested with SIGKILL).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import InputError
from engine.extract.attention import AttentionCapture, capture_attention
from engine.extract.config import ExtractConfig
from engine.extract.estep import MaskSettings, converged, estimate_masks, mask_changes
from engine.extract.initial import given_masks, initial_masks
from engine.extract.iterations import read_iteration_masks, read_record, write_iteration
from engine.extract.mask_ops import Frame, overlay
from engine.extract.model import ExtractionModel
from engine.extract.snapshot import ExtractSnapshot
from engine.project import Project
from engine.train import (
    LoopSchedule,
    MetricsLog,
    Precision,
    RunPaths,
    TrainerState,
    derived_seed,
    remove_stale_temp_folders,
    run_loop,
)

# Settings a resume may change: they do not enter the arithmetic of a step.
RESUMABLE_CHANGES = frozenset({"checkpoint_every", "keep_checkpoints"})
MASKS_KEY = "em.masks"


@dataclass
class RunSetup:
    """What a run needs besides the project: the model pipeline, how it runs, and the
    stage setup for the segmenter (initial masks from boxes)."""

    pipe: Any
    precision: Precision
    base_model: dict[str, Any]  # profile and folder, for the manifest
    stage: Any  # engine.jobs.stage_setup.StageSetup
    segment_method: str = "auto"


def mask_settings(cfg: ExtractConfig) -> MaskSettings:
    return MaskSettings(threshold=cfg.mask_threshold, blend=cfg.mask_blend,
                        crf_iterations=cfg.crf_iterations)


class ExtractionTrainer:
    """The model, the photo and the current masks, as engine.train's loop drives them."""

    def __init__(self, ctx: Any, model: ExtractionModel, capture: AttentionCapture,
                 cfg: ExtractConfig, snapshot: ExtractSnapshot, paths: RunPaths, frame: Frame,
                 square: np.ndarray, masks: np.ndarray) -> None:
        self.ctx, self.model, self.capture, self.cfg = ctx, model, capture, cfg
        self.snapshot, self.paths, self.frame, self.square = snapshot, paths, frame, square
        self.valid = frame.valid()
        self.ends = cfg.iteration_ends()
        self.concept_tokens = [c.token for c in snapshot.concepts]
        self.converged_at: int | None = None
        self.iteration = 0
        self._stepped: tuple[int, dict[str, float]] | None = None
        self.set_masks(masks)

    @property
    def map_side(self) -> int:
        return self.model.latent_side >> self.capture.level

    def set_masks(self, masks: np.ndarray) -> None:
        """The concepts' masks [concepts, side, side], which the next steps train with."""
        self.masks = masks.astype(bool)
        self.model.set_masks(self.token_masks(), self.map_side)

    def token_masks(self) -> np.ndarray:
        """One mask per token: the concepts', then the background token's (the rest of the
        photo), when there is one."""
        if not self.snapshot.background_token:
            return self.masks
        return np.concatenate([self.masks, (self.valid & ~self.masks.any(axis=0))[None]])

    def stop(self, steps_done: int) -> bool:
        return self.converged_at is not None and steps_done >= self.converged_at

    # ------------------------------------------------------------------ the loop's trainer

    def train_step(self, step: int) -> dict[str, float]:
        # The loop retries a step after an out-of-memory; when the E-step ran out, the
        # optimiser step before it is done already and must not be taken twice.
        if self._stepped is None or self._stepped[0] != step:
            self._stepped = (step, self.model.train_step(step, self.capture))
        if step + 1 in self.ends:
            self.e_step(step + 1)
        return self._stepped[1]

    def e_step(self, done: int) -> None:
        began = time.perf_counter()
        iteration = self.ends.index(done) + 1
        generator = torch.Generator().manual_seed(derived_seed(self.cfg.seed, "estep",
                                                               iteration))
        count = len(self.snapshot.concepts)
        prompt = self.model.prompt(range(len(self.model.refs)))
        maps, losses = self.model.photo_attention(prompt, self.capture, generator,
                                                  self.token_masks())
        new = estimate_masks(maps[:count], self.square, self.valid, mask_settings(self.cfg),
                             previous=self.masks)
        ious = mask_changes(new, self.masks)
        for concept, mask in zip(self.snapshot.concepts, new, strict=True):
            if not mask.any():
                self.ctx.log(f"{concept.name}: its mask is empty", "warning")
        done_converging = converged(ious, self.cfg.converge_iou) and \
            done > self.cfg.phase_two_from
        tokens = self.concept_tokens
        self.record_iteration(iteration, done, new, {
            "iou": dict(zip(tokens, ious, strict=True)),
            "concept_loss": dict(zip(tokens, losses[:count], strict=True)),
            "converged": done_converging,
            "seconds": round(time.perf_counter() - began, 4)})
        self.set_masks(new)
        self.iteration = iteration
        if done_converging:
            self.converged_at = done
            self.ctx.log(f"The masks converged after iteration {iteration} (every IoU with "
                         f"the previous masks >= {self.cfg.converge_iou}); stopping at step "
                         f"{done}")

    def record_iteration(self, iteration: int, step: int, masks: np.ndarray,
                         figures: dict[str, Any], rewrite: bool = True) -> dict[str, Any]:
        """Store an iteration's folder (unless `rewrite` is false and it is there), add its
        line to the metrics once, show its overlay."""
        area = [float(m[self.valid].mean()) for m in masks]
        image = overlay(self.frame.crop(self.square), [self.frame.crop(m) for m in masks])
        record = None if rewrite else read_record(self.paths.root, iteration)
        if record is None:
            record = write_iteration(self.paths.root, iteration, self.concept_tokens,
                                     np.stack([self.frame.crop(m) for m in masks]), image,
                                     {"step": step, **figures, "area": dict(zip(
                                         self.concept_tokens, area, strict=True))})
        metrics = MetricsLog(self.paths.metrics)
        if not any(r.get("iteration") == iteration for r in metrics.records()):
            metrics.append(record)
        self.ctx.preview(image, f"masks after iteration {iteration}" if iteration
                         else "initial masks")
        return record

    def save_state(self, step: int) -> TrainerState:
        trainable = {**self.model.trainable_state(),
                     MASKS_KEY: torch.from_numpy(self.masks.astype(np.uint8))}
        state = {"config": self.cfg.to_dict(), "snapshot": self.snapshot.snapshot_id,
                 "tokens": [r.token for r in self.model.refs], "phase": self.model.phase,
                 "iteration": self.iteration, "converged_at": self.converged_at,
                 "rng": "derived from (seed, step) and (seed, iteration): nothing to restore",
                 "scaler": self.model.optimiser.scaler_state()}
        return TrainerState(trainable, self.model.optimiser.state_dict(), state)

    def load_state(self, saved: TrainerState, where: Path) -> None:
        old = ExtractConfig.from_dict(saved.state.get("config")).to_dict()
        now = self.cfg.to_dict()
        changed = {k for k, v in old.items() if now[k] != v} - RESUMABLE_CHANGES
        if changed or saved.state.get("snapshot") != self.snapshot.snapshot_id:
            raise InputError(f"{where} was made with other settings "
                             f"({', '.join(sorted(changed)) or 'photo or concepts'}); "
                             "start a new run instead")
        expected = set(self.model.trainable_state()) | {MASKS_KEY}
        if set(saved.trainable) != expected:
            raise InputError(f"{where} does not fit this model (other layers or tokens)")
        self.model.enter_phase(self.model.phase_of(int(saved.state["step"])))
        self.model.load_trainable_state({k: v for k, v in saved.trainable.items()
                                         if k != MASKS_KEY})
        self.model.optimiser.load_state(saved.optimiser, saved.state.get("scaler"))
        self.iteration = int(saved.state.get("iteration", 0))
        self.converged_at = saved.state.get("converged_at")
        self.set_masks(saved.trainable[MASKS_KEY].numpy().astype(bool))

    def preview(self, step: int) -> tuple[Any, str]:
        image = overlay(self.frame.crop(self.square), [self.frame.crop(m) for m in self.masks])
        return image, f"masks at step {step}"

    def go_leaner(self) -> str | None:
        if self.cfg.gradient_checkpointing:
            return None
        self.model.unet.enable_gradient_checkpointing()
        return "gradient checkpointing (slower, leaner)"


def _start_masks(ctx: Any, project: Project, setup: RunSetup, cfg: ExtractConfig,
                 snapshot: ExtractSnapshot, paths: RunPaths, frame: Frame, image: Any,
                 model: ExtractionModel, capture: AttentionCapture, square: np.ndarray
                 ) -> tuple[np.ndarray, dict[str, str] | None]:
    """Iteration 0's masks and where each came from; read back from the run's folder (then
    the sources are None: the record is there already), else made now."""
    tokens = [c.token for c in snapshot.concepts]
    stored = read_iteration_masks(paths.root, 0, tokens)
    if stored is not None:
        x0, y0, x1, y1 = frame.box
        masks = np.zeros((len(tokens), frame.side, frame.side), bool)
        masks[:, y0:y1, x0:x1] = stored
        return masks, None
    given, sources = given_masks(ctx, project, setup.stage, snapshot, image, frame,
                                 setup.segment_method)
    generator = torch.Generator().manual_seed(derived_seed(cfg.seed, "initial"))
    masks = initial_masks(model, capture, snapshot, square, frame, given, mask_settings(cfg),
                          generator)
    return masks, {t: sources.get(i, "attention") for i, t in enumerate(tokens)}


def run_extraction(ctx: Any, project: Project, run_id: int, cfg: ExtractConfig,
                   snapshot: ExtractSnapshot, setup: RunSetup) -> dict[str, Any]:
    """Extract (or resume) run `run_id` and export it; returns the job result's fields."""
    from engine.extract.outputs import export_run, store_final_masks
    from engine.intake import load_photo

    paths = RunPaths.of(project, run_id)
    remove_stale_temp_folders(paths.root)
    remove_stale_temp_folders(paths.root / "masks")
    resolution = int(cfg.resolution or 0)
    image = load_photo(project, project.photo(snapshot.concepts[0].photo_id))
    frame = Frame(snapshot.width, snapshot.height, resolution)
    square = frame.image(image.rgb_on_white())
    model = ExtractionModel(setup.pipe, snapshot.refs, setup.precision, cfg)
    ctx.progress(0, cfg.steps, "encoding the photo")
    model.encode_photo(square)
    with capture_attention(model.unet) as capture:
        ctx.progress(0, cfg.steps, "initial masks")
        masks, sources = _start_masks(ctx, project, setup, cfg, snapshot, paths, frame, image,
                                      model, capture, square)
        trainer = ExtractionTrainer(ctx, model, capture, cfg, snapshot, paths, frame, square,
                                    masks)
        # Again after a kill between the folder and its metrics line: the line is added once.
        trainer.record_iteration(0, 0, masks, {"sources": sources or {}, "iou": {},
                                               "concept_loss": {}, "converged": False},
                                 rewrite=sources is not None)
        schedule = LoopSchedule(cfg.steps, cfg.checkpoint_every, cfg.keep_checkpoints, 0)
        start = run_loop(ctx, trainer, schedule, paths, stop=trainer.stop)
    done = trainer.converged_at or cfg.steps
    ctx.progress(cfg.steps, cfg.steps, "exporting")
    export_run(model, paths, run_id, cfg, snapshot, setup.base_model, done, trainer)
    ctx.progress(cfg.steps, cfg.steps, "storing the masks")
    stored = store_final_masks(project, snapshot, image, frame, trainer.masks, run_id, cfg,
                               setup.stage.profile)
    losses = [r["loss"] for r in MetricsLog(paths.metrics).records() if "loss" in r]
    return {"run_id": run_id, "steps": done, "iterations": trainer.iteration,
            "converged": trainer.converged_at is not None, "resumed_from": start,
            "final_loss": losses[-1] if losses else None, "concepts": stored,
            "export_dir": str(paths.export), "run_dir": str(paths.root),
            "masks_dir": str(paths.root / "masks")}
