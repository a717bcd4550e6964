"""The `train` job and `mycanvas train`: a new Custom Diffusion run, or the resume of one.

A new run takes a snapshot of the dataset, records a Run (kind "custom-diffusion", its
config, the snapshot id, its folder and metrics file) and trains. Resuming a run (by id)
reads its stored config and snapshot, so it trains on exactly what it started with; only
settings that do not change the arithmetic (steps, checkpoint and sample cadence) may
differ. The run's status follows the job: running, then finished, cancelled or failed (a
killed worker leaves it "running"; resuming picks it up).

Cheap to import: the CLI loads this module for `mycanvas --help`; torch comes in later.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cli import EXIT_OK, arguments, command, run_job_in_cli
from engine.errors import Cancelled, InputError

if TYPE_CHECKING:
    from engine.jobs import JobContext
    from engine.project import Project, Run
    from engine.train.config import TrainConfig
    from engine.train.data import DatasetSnapshot

RUN_KIND = "custom-diffusion"


def _new_run(project: Project, cfg: TrainConfig, profile: str) -> tuple[Run, DatasetSnapshot]:
    from engine.atomic import atomic_write_text
    from engine.project import Run
    from engine.train.data import take_snapshot
    from engine.train.prompts import choose_global_token
    from engine.train.runner import RunPaths

    snapshot = take_snapshot(project)
    global_token = choose_global_token(c.token for c in project.concepts()) \
        if cfg.global_token else None
    run = project.add_run(Run(kind=RUN_KIND, status="running",
                              dataset_snapshot=snapshot.snapshot_id,
                              config={"train": cfg.to_dict(), "profile": profile,
                                      "global_token": global_token}))
    assert run.id is not None
    paths = RunPaths.of(project, run.id)
    paths.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(paths.dataset, snapshot.to_json())
    run = project.update_run(run.id, output_dir=paths.rel,
                             metrics_file=f"{paths.rel}/metrics.jsonl")
    return run, snapshot


def _existing_run(project: Project, run_id: int,
                  changes: dict[str, Any]) -> tuple[Run, TrainConfig, DatasetSnapshot]:
    from engine.train.config import TrainConfig
    from engine.train.data import DatasetSnapshot
    from engine.train.runner import RESUMABLE_CHANGES, RunPaths

    run = project.run(run_id)
    if run.kind != RUN_KIND:
        raise InputError(f"Run {run_id} is a {run.kind!r} run, not a training run")
    refused = sorted(set(changes) - RESUMABLE_CHANGES)
    if refused:
        allowed = ", ".join(sorted(RESUMABLE_CHANGES))
        raise InputError(f"A resumed run keeps its settings; only {allowed} may change "
                         f"(not {', '.join(refused)})")
    cfg = TrainConfig.from_dict(run.config.get("train")).with_changes(**changes)
    paths = RunPaths.of(project, run_id)
    try:
        text = paths.dataset.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"Run {run_id} has no dataset snapshot ({paths.dataset}); start a "
                         "new run") from exc
    snapshot = DatasetSnapshot.from_json(text, str(paths.dataset))
    project.update_run(run_id, status="running", config={**run.config, "train": cfg.to_dict()})
    return run, cfg, snapshot


def latest_resumable_run(project: Project) -> int:
    """The newest training run that did not finish."""
    for run in reversed(project.runs(RUN_KIND)):
        if run.status != "finished" and run.id is not None:
            return run.id
    raise InputError("There is no unfinished training run to resume")


def train_job(ctx: JobContext, project: str, config: dict[str, Any] | None = None,
              run_id: int | None = None, profile: str | None = None,
              device: str | None = None, overrides: dict[str, str] | None = None,
              ) -> dict[str, Any]:
    """Job: train a new run with `config` (TrainConfig fields), or resume `run_id`."""
    from engine.models.profiles import get_profile
    from engine.project import Project
    from engine.settings import load_settings
    from engine.train.config import TrainConfig

    user = load_settings()
    overrides = user.role_overrides if overrides is None else overrides
    with Project.open(project) as proj:
        if run_id is None:
            prof = get_profile(profile or user.profile or None)
            cfg = TrainConfig.from_dict(config)
            if cfg.resolution is None:
                cfg = cfg.with_changes(resolution=prof.resolution)
            run, snapshot = _new_run(proj, cfg, prof.name)
        else:
            run, cfg, snapshot = _existing_run(proj, run_id, dict(config or {}))
            prof = get_profile(profile or run.config.get("profile") or None)
        assert run.id is not None
        # Resuming this job (after a crash or a quit) continues this run, not a new one.
        proj.journal_note_resume(ctx.job_id, run_id=run.id, config={})
        ctx.log(f"Run {run.id}: {cfg.steps} steps on {len(snapshot.items)} items, "
                f"concepts {', '.join(c.token for c in snapshot.concepts)}")
        try:
            result = _train(ctx, proj, run, cfg, snapshot, prof, device or user.device,
                            overrides)
        except Cancelled:
            proj.update_run(run.id, status="cancelled")
            raise
        except BaseException:
            proj.update_run(run.id, status="failed")
            raise
        proj.update_run(run.id, status="finished")
    return result


def _train(ctx: JobContext, project: Project, run: Run, cfg: TrainConfig,
           snapshot: DatasetSnapshot, prof: Any, device: str,
           overrides: dict[str, str]) -> dict[str, Any]:
    from engine.device import plan_device
    from engine.models.loaders import load_text_to_image
    from engine.models.profiles import resolve_role
    from engine.train.custom_diffusion import plan_precision
    from engine.train.runner import RunSetup, run_custom_diffusion

    plan = plan_device(device)
    precision = plan_precision(plan.device, cfg.mixed_precision)
    if cfg.mixed_precision in ("fp16", "bf16") and precision.autocast_dtype is None:
        ctx.log(f"Mixed precision needs a CUDA GPU; training in float32 on {plan.device}")
    folder = resolve_role(prof, "base", overrides)
    ctx.progress(0, cfg.steps, "loading the base model")
    # A fresh pipeline: training changes it (tokens, k/v), so it is never the warm cache's.
    pipe = load_text_to_image(folder, plan.device, precision.weight_dtype)
    key = hashlib.sha256(f"{folder.resolve()}|{precision.weight_dtype}".encode()).hexdigest()
    setup = RunSetup(pipe=pipe, precision=precision, model_key=key[:12],
                     base_model={"profile": prof.name, "folder": str(folder)})
    assert run.id is not None
    return run_custom_diffusion(ctx, project, run.id, cfg, snapshot, setup,
                                run.config.get("global_token"))


# --------------------------------------------------------------------------- CLI


def _cli_config(args: argparse.Namespace) -> dict[str, Any]:
    pairs = {
        "steps": args.steps, "learning_rate": args.lr, "batch_size": args.batch_size,
        "gradient_accumulation": args.accumulation, "seed": args.seed,
        "resolution": args.resolution, "checkpoint_every": args.checkpoint_every,
        "sample_every": args.sample_every, "mixed_precision": args.mixed_precision,
    }
    config = {k: v for k, v in pairs.items() if v is not None}
    for flag, key in (("prior_preservation", "prior_preservation"),
                      ("masked_loss", "masked_loss"),
                      ("gradient_checkpointing", "gradient_checkpointing")):
        if getattr(args, flag):
            config[key] = True
    for flag, key in (("no_global_token", "global_token"),
                      ("no_repeat_tokens", "repeat_concept_tokens"),
                      ("no_separate_background", "separate_background")):
        if getattr(args, flag):
            config[key] = False
    return config


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("project", type=Path)
    p.add_argument("--steps", type=int, help="optimiser steps (default 500)")
    p.add_argument("--lr", type=float, help="learning rate before scaling by the batch "
                   "(default 1e-5)")
    p.add_argument("--batch-size", type=int, help="images per step (default 2)")
    p.add_argument("--accumulation", type=int, help="gradient accumulation steps (default 1)")
    p.add_argument("--seed", type=int, help="seed (default 0)")
    p.add_argument("--resolution", type=int, help="training side in pixels (default: profile's)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (100)")
    p.add_argument("--sample-every", type=int, help="steps between preview samples (100; 0 off)")
    p.add_argument("--mixed-precision", choices=["auto", "no", "fp16", "bf16"],
                   help="auto: bf16 or fp16 on a CUDA GPU, float32 elsewhere")
    p.add_argument("--prior-preservation", action="store_true",
                   help="regularise with class images made by the base model")
    p.add_argument("--masked-loss", action="store_true",
                   help="weight the loss inside the object masks")
    p.add_argument("--gradient-checkpointing", action="store_true", help="less memory, slower")
    p.add_argument("--no-global-token", action="store_true",
                   help="Gen4Gen: no global composition token")
    p.add_argument("--no-repeat-tokens", action="store_true",
                   help="Gen4Gen: name each concept once in the prompt")
    p.add_argument("--no-separate-background", action="store_true",
                   help="Gen4Gen: keep the scene inside the caption")
    p.add_argument("--resume", nargs="?", const="last", metavar="RUN_ID",
                   help="continue a run from its last checkpoint (default: the latest "
                   "unfinished one)")


@command("train", "fine-tune the concepts (Custom Diffusion) on the dataset", stage=True)
@arguments(_add_arguments)
def cmd_train(args: argparse.Namespace) -> int:
    run_id = None
    if args.resume is not None:
        if args.resume == "last":
            from engine.project import Project

            with Project.open(args.project) as proj:
                run_id = latest_resumable_run(proj)
        else:
            try:
                run_id = int(args.resume)
            except ValueError:
                raise InputError(f"--resume takes a run id, got {args.resume!r}") from None
    params = {"project": str(args.project), "config": _cli_config(args), "run_id": run_id,
              "profile": args.profile, "device": args.device}
    result = run_job_in_cli("train", params, args)
    resumed = f" (resumed at step {result['resumed_from']})" if result["resumed_from"] else ""
    print(f"Run {result['run_id']}: {result['steps']} steps{resumed}, final loss "
          f"{result['final_loss']:.4f}. Concepts in {result['export_dir']}")
    return EXIT_OK
