"""The training stage's job, declared once: train a new Custom Diffusion run, or resume one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.jobs.declaration import JobDeclaration, JobResult, StageParams, param


@dataclass(frozen=True, kw_only=True)
class TrainParams(StageParams):
    config: dict[str, Any] | None = param(None, cli=False,
                                          help="TrainConfig fields (engine.train.config)")
    run_id: int | None = param(None, cli=False, minimum=1,
                               help="resume this run instead of starting a new one")


@dataclass(frozen=True)
class TrainedRun(JobResult):
    run_id: int
    steps: int
    resumed_from: int
    final_loss: float | None
    export_dir: str
    run_dir: str

    def summary(self) -> str:
        resumed = f" (resumed at step {self.resumed_from})" if self.resumed_from else ""
        loss = "n/a" if self.final_loss is None else f"{self.final_loss:.4f}"
        return (f"Run {self.run_id}: {self.steps} steps{resumed}, final loss {loss}. "
                f"Concepts in {self.export_dir}")


TRAIN = JobDeclaration(
    "train", "engine.train.training_job:train_job", TrainParams, TrainedRun,
    title="Train the concepts", resumable=True, changes=("runs",),
    owner_check="engine.train.runs:run_owned_elsewhere", continues_on=("run_id",),
    help="fine-tune the concepts (Custom Diffusion) on the dataset")
JOBS = (TRAIN,)
