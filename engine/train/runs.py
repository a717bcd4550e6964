"""The life of a run of any kind (custom-diffusion, em-extract): its catalogue record, its
folder, resuming it, and its status following the job.

    runs/<run id>/
      dataset.json        the snapshot the run trains on (stored once, read back on resume)
      metrics.jsonl       one line per step (loss, lr, grad norm, seconds) and per sample
      checkpoints/        step-NNNNNNN/ folders (engine.train.checkpoints)
      samples/            preview images, step-NNNNNNN.png
      cache/              what the run caches (e.g. latent statistics; re-used by a resume)
      export/             what the run produces

Status: "running" while a job works on it, then finished, cancelled or failed. A killed
worker leaves it "running"; it stays resumable, as does a cancelled or failed run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from engine.atomic import atomic_write_text
from engine.errors import Cancelled, InputError
from engine.text import with_article

if TYPE_CHECKING:
    from engine.project import Project, Run

S = TypeVar("S")


@dataclass(frozen=True)
class RunKind:
    name: str  # as stored in the catalogue: "custom-diffusion", "em-extract"
    noun: str  # for messages: "training", "extraction"


class Snapshot(Protocol):
    """What a run trains on, frozen when the run starts (e.g. a DatasetSnapshot)."""

    @property
    def snapshot_id(self) -> str: ...

    def to_json(self) -> str: ...


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


def new_run(project: Project, kind: RunKind, config: dict[str, Any],
            snapshot: Snapshot) -> Run:
    """Record a running run of `kind` with `config`, make its folder, store its snapshot."""
    from engine.project import Run

    run = project.add_run(Run(kind=kind.name, status="running",
                              dataset_snapshot=snapshot.snapshot_id, config=config))
    assert run.id is not None
    paths = RunPaths.of(project, run.id)
    paths.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths.dataset, snapshot.to_json())
    return project.update_run(run.id, output_dir=paths.rel,
                              metrics_file=f"{paths.rel}/metrics.jsonl")


def open_run(project: Project, run_id: int, kind: RunKind) -> Run:
    """Run `run_id`, refused unless it is of `kind`."""
    run = project.run(run_id)
    if run.kind != kind.name:
        raise InputError(f"Run {run_id} is a {run.kind!r} run, not "
                         f"{with_article(kind.noun)} run")
    return run


def read_snapshot(project: Project, run_id: int, parse: Callable[[str, str], S]) -> S:
    """The snapshot stored with the run, through `parse(text, where)` (e.g.
    DatasetSnapshot.from_json)."""
    path = RunPaths.of(project, run_id).dataset
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"Run {run_id} has no dataset snapshot ({path}); start a new "
                         "run") from exc
    return parse(text, str(path))


def resume_run(project: Project, run: Run, config: dict[str, Any],
               parse: Callable[[str, str], S]) -> S:
    """Mark `run` (from open_run) running again with `config`; returns its snapshot."""
    assert run.id is not None
    snapshot = read_snapshot(project, run.id, parse)
    project.update_run(run.id, status="running", config=config)
    return snapshot


def latest_resumable_run(project: Project, kind: RunKind) -> int:
    """The newest run of `kind` that did not finish."""
    for run in reversed(project.runs(kind.name)):
        if run.status != "finished" and run.id is not None:
            return run.id
    raise InputError(f"There is no unfinished {kind.noun} run to resume")


@contextlib.contextmanager
def status_follows(project: Project, run_id: int) -> Iterator[None]:
    """The run ends finished if the block returns, cancelled on Cancelled, else failed."""
    try:
        yield
    except Cancelled:
        project.update_run(run_id, status="cancelled")
        raise
    except BaseException:
        project.update_run(run_id, status="failed")
        raise
    project.update_run(run_id, status="finished")


def delete_run(project: Project, run_id: int) -> None:
    """Delete a run of any kind: its row first, then its folder (a kill in between leaves
    only a folder no row names). Its generated pictures stay in the gallery, unlinked. The
    caller makes sure no job works on it (the window: not its own running job)."""
    import shutil

    project.run(run_id)  # InputError "No run with id N" if there is none
    folder = RunPaths.of(project, run_id).root
    project.delete_run(run_id)
    shutil.rmtree(folder, ignore_errors=True)
