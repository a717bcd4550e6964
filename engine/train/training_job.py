"""The `train` job: a new Custom Diffusion run, or the resume of one.

A new run takes a snapshot of the dataset, records a Run (kind "custom-diffusion", its
config, the snapshot id, its folder and metrics file) and trains. Resuming a run (by id)
reads its stored config and snapshot, so it trains on exactly what it started with; only
settings that do not change the arithmetic (steps, checkpoint and sample cadence) may
differ. The job owns the run while it works (engine.train.runs.claim_run): a second trainer
on it is refused, naming this one. The run's status follows the job: running, then finished,
cancelled or failed (a killed worker leaves it "running"; the next new run marks it
interrupted, and resuming picks it up). A new run that fails before its first checkpoint is
taken back (row and folder): a failed job leaves the project as it was.

Torch is imported when a run starts, not with this module.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError, MyCanvasError
from engine.train.runs import RunKind

if TYPE_CHECKING:
    from engine.jobs import JobContext
    from engine.jobs.stage_setup import StageSetup
    from engine.project import Project, Run
    from engine.train.config import TrainConfig
    from engine.train.data import DatasetSnapshot
    from engine.train.jobs import TrainedRun, TrainParams

RUN_KIND = RunKind("custom-diffusion", "training")


def _new_run(project: Project, cfg: TrainConfig, profile: str) -> tuple[Run, DatasetSnapshot]:
    from engine.models.profiles import get_profile
    from engine.train.data import take_snapshot
    from engine.train.prompts import choose_global_token
    from engine.train.runs import new_run

    # Pictures made by test models are noise: a real run leaves them out unless asked.
    test_pictures = cfg.include_test_pictures or get_profile(profile).test_models
    snapshot = take_snapshot(project, test_pictures=test_pictures)
    global_token = choose_global_token(c.token for c in project.concepts()) \
        if cfg.global_token else None
    config = {"train": cfg.to_dict(), "profile": profile, "global_token": global_token}
    return new_run(project, RUN_KIND, config, snapshot), snapshot


def _existing_run(project: Project, run_id: int,
                  changes: dict[str, Any]) -> tuple[Run, TrainConfig, DatasetSnapshot]:
    from engine.train.config import TrainConfig
    from engine.train.data import DatasetSnapshot
    from engine.train.runner import RESUMABLE_CHANGES
    from engine.train.runs import open_run, resume_run

    run = open_run(project, run_id, RUN_KIND)
    refused = sorted(set(changes) - RESUMABLE_CHANGES)
    if refused:
        allowed = ", ".join(sorted(RESUMABLE_CHANGES))
        raise InputError(f"A resumed run keeps its settings; only {allowed} may change "
                         f"(not {', '.join(refused)})")
    cfg = TrainConfig.from_dict(run.config.get("train")).with_changes(**changes)
    snapshot = resume_run(project, run, {**run.config, "train": cfg.to_dict()},
                          DatasetSnapshot.from_json)
    return run, cfg, snapshot


def latest_resumable_run(project: Project) -> int:
    """The newest training run that did not finish."""
    from engine.train.runs import latest_resumable_run as latest

    return latest(project, RUN_KIND)


def train_job(ctx: JobContext, params: TrainParams) -> TrainedRun:
    """Job: train a new run with `config` (TrainConfig fields), or resume `run_id`. The base
    model is found before anything is recorded: a missing model leaves no run behind."""
    from dataclasses import replace

    from engine.jobs.stage_setup import resolve_stage
    from engine.project import Project
    from engine.train.config import TrainConfig
    from engine.train.jobs import TrainedRun
    from engine.train.runs import claim_run, open_run, run_has_checkpoint, settle_dead_runs

    with Project.open(params.project) as proj:
        if params.run_id is None:
            setup = resolve_stage(params)
            base = setup.role_path("base")  # ModelMissingError here, before a run exists
            cfg = TrainConfig.from_dict(params.config)
            if cfg.resolution is None:
                cfg = cfg.with_changes(resolution=setup.profile.resolution)
            for dead in settle_dead_runs(proj, RUN_KIND):
                ctx.log(f"Run {dead} was interrupted (the process training it is gone); "
                        f"resume it with: mycanvas train PROJECT --resume {dead}", "warning")
            # A run that fails before its first checkpoint is taken back: nothing to resume.
            made: dict[str, int | None] = {}
            with proj.provisional(keep_if=lambda: run_has_checkpoint(proj, made.get("run"))):
                run, snapshot = _new_run(proj, cfg, setup.profile.name)
                made["run"] = run.id
                assert run.id is not None
                with claim_run(proj, run.id, RUN_KIND):
                    result = _run(ctx, proj, run, cfg, snapshot, setup, base)
            return TrainedRun(**result)
        # A resumed run keeps the profile it started with, unless told otherwise.
        run = open_run(proj, params.run_id, RUN_KIND)
        setup = resolve_stage(replace(params, profile=params.profile
                                      or run.config.get("profile")))
        base = setup.role_path("base")
        with claim_run(proj, params.run_id, RUN_KIND):  # before anything of the run changes
            run, cfg, snapshot = _existing_run(proj, params.run_id, dict(params.config or {}))
            result = _run(ctx, proj, run, cfg, snapshot, setup, base)
    return TrainedRun(**result)


def _run(ctx: JobContext, proj: Project, run: Run, cfg: TrainConfig,
         snapshot: DatasetSnapshot, setup: StageSetup, base: Path) -> dict[str, Any]:
    """Train the claimed run; its status follows."""
    from engine.train.runs import status_follows

    assert run.id is not None
    # Resuming this job (after a crash or a quit) continues this run, not a new one.
    proj.journal_note_resume(ctx.job_id, run_id=run.id, config={})
    ctx.log(f"Run {run.id}: {cfg.steps} steps on {len(snapshot.items)} items, "
            f"concepts {', '.join(c.token for c in snapshot.concepts)}")
    with status_follows(proj, run.id), _disk_full_named(proj, run.id):
        return _train(ctx, proj, run, cfg, snapshot, setup, base)


@contextlib.contextmanager
def _disk_full_named(project: Project, run_id: int) -> Iterator[None]:
    """A full disk anywhere in a run (metrics, previews, caches, the export) is reported
    with the run's folder and the checkpoint it can resume from."""
    from engine.atomic import disk_full_error, is_disk_full
    from engine.train.checkpoints import kept_checkpoint
    from engine.train.runs import RunPaths

    try:
        yield
    except MyCanvasError:
        raise
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        paths = RunPaths.of(project, run_id)
        raise disk_full_error(paths.root, None, kept_checkpoint(paths.checkpoints),
                              f"resume the run (mycanvas train PROJECT --resume {run_id})"
                              ) from exc


def _train(ctx: JobContext, project: Project, run: Run, cfg: TrainConfig,
           snapshot: DatasetSnapshot, setup: StageSetup, folder: Path) -> dict[str, Any]:
    from engine.train.fine_tuning import load_base_pipeline
    from engine.train.runner import RunSetup, run_custom_diffusion

    plan = setup.device
    assert plan is not None
    prof = setup.profile
    base = load_base_pipeline(ctx, plan, folder, cfg.mixed_precision, cfg.steps, "Training")
    pipe, precision = base.pipe, base.precision
    key = hashlib.sha256(f"{folder.resolve()}|{precision.weight_dtype}".encode()).hexdigest()
    run_setup = RunSetup(pipe=pipe, precision=precision, model_key=key[:12],
                         base_model={"profile": prof.name, "folder": str(folder)}, plan=plan)
    assert run.id is not None
    return run_custom_diffusion(ctx, project, run.id, cfg, snapshot, run_setup,
                                run.config.get("global_token"))
