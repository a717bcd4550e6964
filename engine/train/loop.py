"""The training loop any trainer plugs into: resume, steps, checkpoints, previews, cancel.

The loop knows nothing of models. A trainer (see `Trainer`) does one optimiser step, hands
out and takes back its state, and samples a preview; the loop

* resumes from the last complete checkpoint (and cuts the metrics log back to it),
* reports progress before every step: that is also the cancel check, and a cancel saves a
  checkpoint of the steps done before `Cancelled` goes on up,
* retries a step once after an out-of-memory, in the trainer's leaner mode,
* logs every step to metrics.jsonl, and saves a checkpoint every `checkpoint_every` steps
  and at the end (atomically, pruning old ones; engine.train.checkpoints), and a preview
  every `sample_every` steps.

Every random draw of a step must derive from (seed, step), so that a resumed run repeats an
uninterrupted one bit for bit without saving generator states.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.atomic import atomic_write_bytes, atomic_write_text
from engine.errors import Cancelled
from engine.masks import png_bytes
from engine.train import checkpoints as ckpt

if TYPE_CHECKING:
    from PIL import Image

    from engine.train.runs import RunPaths


@dataclass
class TrainerState:
    """What a checkpoint holds (see engine.train.checkpoints)."""

    trainable: dict[str, Any]  # tensors, by name
    optimiser: dict[str, Any]  # the optimiser's state_dict
    state: dict[str, Any]  # JSON: config, snapshot id, scaler state, ...


class Trainer(Protocol):
    def train_step(self, step: int) -> dict[str, float]:
        """Optimiser step number `step` (0-based); its metrics, with at least "loss"."""

    def save_state(self, step: int) -> TrainerState:
        """Copies of everything needed to continue after `step` steps."""

    def load_state(self, saved: TrainerState, where: Path) -> None:
        """Continue from `saved`; raise InputError (naming `where`) if it does not fit."""

    def preview(self, step: int) -> tuple[Image.Image, str]:
        """A sample of the current weights and the prompt it shows."""

    def go_leaner(self) -> str | None:
        """After an out-of-memory: switch on a memory saver and say which; None: none left."""


@dataclass(frozen=True)
class LoopSchedule:
    steps: int
    checkpoint_every: int
    keep_checkpoints: int
    sample_every: int  # 0: no previews


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


def resume(trainer: Trainer, folder: Path, metrics: MetricsLog, ctx: Any) -> int:
    """Load the last complete checkpoint in `folder` into `trainer`; the step it was at."""
    ckpt.remove_stale_temp_folders(folder)
    last = ckpt.latest_checkpoint(folder)
    if last is None:
        metrics.cut_after(0)
        return 0
    trainable, optimiser_state, state = ckpt.load_checkpoint(last)
    trainer.load_state(TrainerState(trainable, optimiser_state, state), last.path)
    metrics.cut_after(last.step)
    ctx.log(f"Resuming from the checkpoint at step {last.step}")
    return last.step


def save(trainer: Trainer, folder: Path, step: int, keep: int) -> None:
    saved = trainer.save_state(step)
    ckpt.save_checkpoint(folder, step, saved.trainable, saved.optimiser, saved.state, keep)


def _preview(trainer: Trainer, paths: RunPaths, step: int, metrics: MetricsLog,
             ctx: Any) -> None:
    image, prompt = trainer.preview(step)
    name = f"{ckpt.checkpoint_name(step)}.png"
    atomic_write_bytes(paths.samples / name, png_bytes(image))
    metrics.append({"step": step, "sample": f"samples/{name}", "prompt": prompt})
    ctx.preview(image, f"step {step}: {prompt}")


def step_with_oom_retry(trainer: Trainer, step: int, ctx: Any) -> dict[str, float]:
    from engine.device import free_device_memory, is_out_of_memory

    try:
        return trainer.train_step(step)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        leaner = trainer.go_leaner()
        if leaner is None:
            raise
    free_device_memory()
    ctx.log(f"Out of memory; continuing with {leaner}", "warning")
    return trainer.train_step(step)


def run_loop(ctx: Any, trainer: Trainer, schedule: LoopSchedule, paths: RunPaths,
             stop: Callable[[int], bool] | None = None) -> int:
    """Train from the last checkpoint (or step 0) to schedule.steps; returns the step it
    resumed from. `ctx` is the job context (progress, log, preview). `stop(steps_done)`, asked
    before every step (also right after a resume), ends the run early when true (e.g. EM
    extraction's masks converged); the steps done are then checkpointed."""
    metrics = MetricsLog(paths.metrics)
    start = resume(trainer, paths.checkpoints, metrics, ctx)
    saved_at = done = start
    loss = float("nan")
    try:
        for step in range(start, schedule.steps):
            if stop is not None and stop(step):
                break
            ctx.progress(step, schedule.steps, f"step {step + 1}/{schedule.steps}"
                         + (f", loss {loss:.4f}" if step > start else ""))
            began = time.perf_counter()
            record = step_with_oom_retry(trainer, step, ctx)
            loss = record["loss"]
            metrics.append({"step": step + 1, **record,
                            "seconds": round(time.perf_counter() - began, 4)})
            done = step + 1
            if done % schedule.checkpoint_every == 0 or done == schedule.steps:
                save(trainer, paths.checkpoints, done, schedule.keep_checkpoints)
                saved_at = done
            if schedule.sample_every and done % schedule.sample_every == 0:
                _preview(trainer, paths, done, metrics, ctx)
    except Cancelled:
        if done > saved_at:  # keep what was done: the run can be resumed from here
            save(trainer, paths.checkpoints, done, schedule.keep_checkpoints)
        raise
    if done > saved_at:  # stopped early between checkpoints
        save(trainer, paths.checkpoints, done, schedule.keep_checkpoints)
    return start
