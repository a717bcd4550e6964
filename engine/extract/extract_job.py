"""The `extract` job: a new EM extraction run, or the resume of one.

A new run checks every input first (engine.extract.snapshot), then adds the new concepts and
their photo records, records a Run (kind "em-extract", its config, the snapshot id, its
folder and metrics file) and runs (engine.extract.runner). Resuming a run (by id) reads its
stored config and snapshot; only the checkpoint cadence may change. The job owns the run
while it works (engine.train.claim_run: a second one is refused, naming this one). The run's
status follows the job (running, then finished, cancelled or failed; a killed worker leaves it
"running", the next new extraction marks it interrupted, and it stays resumable). A new
extraction that fails before its first checkpoint takes back its concepts, photo records and
run (Project.provisional). Torch is imported when a run starts, not with this module.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.train import RunKind

if TYPE_CHECKING:
    from engine.extract.config import ExtractConfig
    from engine.extract.jobs import ExtractedConcepts, ExtractParams
    from engine.extract.snapshot import ExtractSnapshot
    from engine.jobs import JobContext
    from engine.project import Project, Run

RUN_KIND = RunKind("em-extract", "extraction")


def latest_resumable_extraction(project: Project) -> int:
    """The newest extraction run that did not finish."""
    from engine.train import latest_unfinished_run

    return latest_unfinished_run(project, RUN_KIND)


def _new_run(project: Project, params: ExtractParams, cfg: ExtractConfig, profile: str
             ) -> tuple[Run, ExtractSnapshot]:
    from engine.extract.snapshot import (
        check_specs,
        read_photo_source,
        record_concepts,
        spec_from_dict,
    )
    from engine.train import new_run

    specs = [spec_from_dict(raw, i) for i, raw in enumerate(params.concepts)]
    source = read_photo_source(project, params.photo or "")
    check_specs(project, specs, source, params.start_from_masks)
    existing = {c.id for c in project.concepts()}
    snapshot = record_concepts(project, specs, source, params.start_from_masks,
                               cfg.background_token)
    config: dict[str, Any] = {"extract": cfg.to_dict(), "profile": profile,
                              "segment_method": params.segment_method}
    if not params.add_concepts:  # the run remembers it, so a resume honours it too
        config["keep_in_run"] = [c.concept_id for c in snapshot.concepts
                                 if c.concept_id not in existing]
    return new_run(project, RUN_KIND, config, snapshot), snapshot


def _existing_run(project: Project, run_id: int, changes: dict[str, Any]
                  ) -> tuple[Run, ExtractConfig, ExtractSnapshot]:
    from engine.extract.config import ExtractConfig
    from engine.extract.runner import RESUMABLE_CHANGES
    from engine.extract.snapshot import ExtractSnapshot
    from engine.train import open_run, resume_run

    run = open_run(project, run_id, RUN_KIND)
    refused = sorted(set(changes) - RESUMABLE_CHANGES)
    if refused:
        raise InputError(f"A resumed run keeps its settings; only "
                         f"{', '.join(sorted(RESUMABLE_CHANGES))} may change "
                         f"(not {', '.join(refused)})")
    cfg = ExtractConfig.from_dict(run.config.get("extract")).with_changes(**changes)
    snapshot = resume_run(project, run, {**run.config, "extract": cfg.to_dict()},
                          ExtractSnapshot.from_json)
    return run, cfg, snapshot


def extract_job(ctx: JobContext, params: ExtractParams) -> ExtractedConcepts:
    """Job: extract the concepts of a new run, or resume `run_id`."""
    from engine.extract.config import ExtractConfig
    from engine.extract.jobs import ExtractedConcepts
    from engine.jobs.stage_setup import resolve_stage
    from engine.project import Project
    from engine.train import claim_run, open_run, run_has_checkpoint, settle_dead_runs

    with Project.open(params.project) as proj:
        if params.run_id is None:
            setup = resolve_stage(params)
            cfg = ExtractConfig.from_dict(params.config)
            if cfg.resolution is None:
                cfg = cfg.with_changes(resolution=setup.profile.resolution)
            for dead in settle_dead_runs(proj, RUN_KIND):
                ctx.log(f"Run {dead} was interrupted (the process extracting it is gone); "
                        f"resume it with: mycanvas extract PROJECT --resume {dead}", "warning")
            # Concepts, photos and a run of an extraction that fails before its first
            # checkpoint are taken back: a failed job leaves the project as it was.
            made: dict[str, int | None] = {}
            with proj.provisional(keep_if=lambda: run_has_checkpoint(proj, made.get("run"))):
                run, snapshot = _new_run(proj, params, cfg, setup.profile.name)
                assert run.id is not None
                made["run"] = run.id
                with claim_run(proj, run.id, RUN_KIND):
                    result = _run(ctx, proj, run, cfg, snapshot, setup, params.segment_method)
            return ExtractedConcepts(**result, **_keep_in_run(proj, run.id))
        run = open_run(proj, params.run_id, RUN_KIND)
        with claim_run(proj, params.run_id, RUN_KIND):  # before anything of the run changes
            run, cfg, snapshot = _existing_run(proj, params.run_id, dict(params.config or {}))
            setup = resolve_stage(replace(params, profile=params.profile
                                          or run.config.get("profile")))
            method = str(run.config.get("segment_method") or "auto")
            result = _run(ctx, proj, run, cfg, snapshot, setup, method)
        return ExtractedConcepts(**result, **_keep_in_run(proj, params.run_id))


def _keep_in_run(proj: Project, run_id: int) -> dict[str, Any]:
    """A finished run told not to add its concepts (`add_concepts` false): the concepts it
    made leave the project's list, with their photos and masks; its export keeps them."""
    made = proj.run(run_id).config.get("keep_in_run")
    if made is None:
        return {}
    known = {c.id for c in proj.concepts()}
    for concept_id in made:
        if concept_id in known:
            proj.drop_concept(concept_id)
    return {"added_to_project": False}


def _run(ctx: JobContext, proj: Project, run: Run, cfg: ExtractConfig,
         snapshot: ExtractSnapshot, setup: Any, method: str) -> dict[str, Any]:
    """Extract on the claimed run; its status follows."""
    from engine.train import status_follows

    assert run.id is not None
    # Resuming this job (after a crash or a quit) continues this run, not a new one.
    proj.journal_note_resume(ctx.job_id, run_id=run.id, config={})
    ctx.log(f"Run {run.id}: up to {cfg.steps} steps in {cfg.iterations} iterations on "
            f"{snapshot.photo_name}, concepts "
            f"{', '.join(f'{c.token} {c.class_word}' for c in snapshot.concepts)}")
    with status_follows(proj, run.id):
        result = _extract(ctx, proj, run, cfg, snapshot, setup, method)
        proj.update_run(run.id, config={**run.config, "extract": cfg.to_dict(),
                                        "outcome": _outcome(result)})
    return result


def _outcome(result: dict[str, Any]) -> dict[str, Any]:
    """What the run record keeps of the result (the masks' ids on the project)."""
    return {k: result[k] for k in ("steps", "iterations", "converged", "final_loss")} | {
        "masks": {c["token"]: c["mask_id"] for c in result["concepts"]}}


def _extract(ctx: JobContext, project: Project, run: Run, cfg: ExtractConfig,
             snapshot: ExtractSnapshot, setup: Any, method: str) -> dict[str, Any]:
    from engine.extract.runner import RunSetup, run_extraction
    from engine.train import load_base_pipeline

    plan = setup.device
    assert plan is not None and run.id is not None
    folder = setup.role_path("base")
    # bf16 autocast where the device plan computes in it (a CPU with bf16 units), as training
    base = load_base_pipeline(ctx, plan, folder, cfg.mixed_precision, cfg.steps, "Extraction")
    pipe, precision = base.pipe, base.precision
    run_setup = RunSetup(pipe=pipe, precision=precision, stage=setup, segment_method=method,
                         base_model={"profile": setup.profile.name, "folder": str(folder)})
    return run_extraction(ctx, project, run.id, cfg, snapshot, run_setup)
