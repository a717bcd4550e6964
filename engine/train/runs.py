"""The life of a run of any kind (custom-diffusion, em-extract): its catalogue record, its
folder, resuming it, and its status following the job.

    runs/<run id>/
      dataset.json        the snapshot the run trains on (stored once, read back on resume)
      metrics.jsonl       one line per step (loss, lr, grad norm, seconds) and per sample
      checkpoints/        step-NNNNNNN/ folders (engine.train.checkpoints)
      samples/            preview images, step-NNNNNNN.png
      cache/              what the run caches (e.g. latent statistics; re-used by a resume)
      export/             what the run produces

Status: "queued" when recorded, "running" while a job works on it, then finished, cancelled
or failed. One process at a time works on a run: it holds the run's owner lock
(`.owner.lock`, engine.project.locks) from before it marks the run running until it has
marked how it ended, so a second trainer (a Resume, another command line) is refused with
the holder named. A killed worker leaves the run "running" with nobody holding it: the next
job to start a run of that kind marks it "interrupted" (`settle_dead_runs`). Interrupted,
cancelled and failed runs stay resumable.
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

    OWNER_LOCK = ".owner.lock"

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
    owner_lock = property(lambda self: self.root / RunPaths.OWNER_LOCK)


def new_run(project: Project, kind: RunKind, config: dict[str, Any],
            snapshot: Snapshot) -> Run:
    """Record a queued run of `kind` with `config`, make its folder, store its snapshot; the
    job then claims it (claim_run), which marks it running."""
    from engine.project import Run

    run = project.add_run(Run(kind=kind.name, status="queued",
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
    """Give `run` (from open_run, claimed with claim_run) `config`; returns its snapshot."""
    assert run.id is not None
    snapshot = read_snapshot(project, run.id, parse)
    project.update_run(run.id, status="running", config=config)
    return snapshot


def run_owner(project: Project, run_id: int) -> str | None:
    """Who works on run `run_id` now ("process 1234 (mycanvas train), working on training
    run 4 since 14:02:05"), or None."""
    from engine.project import holder_of

    return holder_of(RunPaths.of(project, run_id).owner_lock)


@contextlib.contextmanager
def claim_run(project: Project, run_id: int, kind: RunKind) -> Iterator[None]:
    """Work on run `run_id` as its only owner: hold its lock for the block and mark it
    running. While another process holds it, ProjectError naming that process, and nothing
    of the run is touched."""
    from engine.project import held

    paths = RunPaths.of(project, run_id)
    paths.root.mkdir(parents=True, exist_ok=True)
    with held(paths.owner_lock, f"working on {kind.noun} run {run_id}",
              _refusal(run_id, "{holder}")):
        project.update_run(run_id, status="running")
        yield


def _refusal(run_id: int, holder: str) -> str:
    return f"Run {run_id} already has an owner: {holder}; wait for it to finish, or stop it there"


def run_owned_elsewhere(params: Any) -> str | None:
    """For a job resuming a run (`params.run_id` in `params.project`): the refusal naming the
    process that works on that run now, or None (a declaration's `owner_check`)."""
    from engine.project import holder_of

    run_id = getattr(params, "run_id", None)
    if run_id is None:
        return None
    holder = holder_of(Path(params.project) / "runs" / str(run_id) / RunPaths.OWNER_LOCK)
    return None if holder is None else _refusal(run_id, holder)


def settle_dead_runs(project: Project, kind: RunKind) -> list[int]:
    """Mark "interrupted" the runs of `kind` left "running" by a process that is gone (no
    one holds their lock); returns their ids, oldest first."""
    dead = []
    for run in project.runs(kind.name):
        if run.status == "running" and run.id is not None and run_owner(project, run.id) is None:
            project.update_run(run.id, status="interrupted")
            dead.append(run.id)
    return dead


def run_has_checkpoint(project: Project, run_id: int | None) -> bool:
    """Whether the run has a complete checkpoint: work a failed job keeps (resumable)."""
    from engine.train.checkpoints import latest_checkpoint

    return run_id is not None and \
        latest_checkpoint(RunPaths.of(project, run_id).checkpoints) is not None


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
    caller makes sure its own jobs do not work on it; a run another process works on is
    refused."""
    import shutil

    from engine.errors import ProjectError

    project.run(run_id)  # InputError "No run with id N" if there is none
    owner = run_owner(project, run_id)
    if owner is not None:
        raise ProjectError(f"Run {run_id} cannot be deleted now: {owner}; wait for it "
                           "to finish, or stop it there")
    folder = RunPaths.of(project, run_id).root
    project.delete_run(run_id)
    shutil.rmtree(folder, ignore_errors=True)
