"""The plan shown before the chain starts: which stages run, how many of what each makes,
how long that takes and how much disk it needs.

`personalize_plan(state, params, device, profile)` is a pure function of what is done
(`ChainState`, read by engine.personalize.state), the parameters, the device plan and the
profile: the window shows its result, `mycanvas personalize --dry-run` prints it, and the
chain weights its progress bar with its per-stage seconds. The `personalize-plan` job reads
the state and the device and returns the plan (the window runs it in its worker, where
torch is loaded anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.models.profiles import download_mb
from engine.personalize.costs import DATASET_STRENGTH, cost_table, disk_sizes
from engine.personalize.jobs import Plan, StagePlan, chain_stage
from engine.personalize.presets import PresetSettings, device_kind, settings_for
from engine.personalize.state import BATCH_PREFIX, ChainState

if TYPE_CHECKING:
    from engine.device import DevicePlan
    from engine.jobs import JobContext
    from engine.models.profiles import Profile
    from engine.personalize.calibration import Calibration
    from engine.personalize.jobs import PersonalizeParams
    from engine.personalize.timings import StageTimings

SCORING_ROLES = chain_stage("score").roles


def run_key(settings: PresetSettings, seed: int) -> str:
    """What a chain's training run was started with: another key trains a new run."""
    key = f"steps={settings.train_steps} items={settings.items} seed={seed}"
    return key + (f" resolution={settings.resolution}" if settings.resolution else "")


# PNDM, the profiles' default scheduler, makes one UNet call more than its steps (its first
# step is taken twice); counted in tests/benchmarks/bench_personalize.py's stage rows.
PNDM_EXTRA_CALL = 1


def dataset_denoising_steps(settings: PresetSettings) -> int:
    """UNet calls the inpainting pipeline really makes per item (it skips 1 - strength of the
    steps)."""
    return min(int(settings.dataset_steps * DATASET_STRENGTH),
               settings.dataset_steps) + PNDM_EXTRA_CALL


def personalize_plan(state: ChainState, params: PersonalizeParams, device: DevicePlan,
                     profile: Profile, calibration: Calibration | None = None,
                     timings: StageTimings | None = None) -> Plan:
    """What the chain would do now, from what is done, at the speeds `calibration` measured
    on this machine (None: the rough speeds of its kind of CPU), refined by what its stages
    took here before (`timings`). Pure: reads nothing, writes nothing."""
    kind = device_kind(device)
    s = settings_for(params, profile.name, kind)
    costs = cost_table(profile.name, kind, device.cpu_kind or "avx2", calibration, timings)
    disk = disk_sizes(profile.name)
    stages: list[StagePlan] = []

    def add(stage: str, unit: str, target: int, done: int, count: int, seconds: float,
            disk_bytes: float, note: str = "", rebuilds: int = 0, load: float = 0.0,
            parts: tuple[float, ...] = ()) -> None:
        stages.append(StagePlan(stage, chain_stage(stage).title, unit, target, done, count,
                                round(seconds, 1) if count else 0.0,
                                int(disk_bytes) if count else 0, note, rebuilds,
                                round(min(load, seconds), 2) if count else 0.0,
                                tuple(round(p, 2) for p in parts) if count else ()))

    todo = state.photos_to_segment
    note = "" if todo else "every photo has a mask (yours are kept)"
    if state.test_masks:
        note = f"{state.test_masks} mask(s) made with the test models will be made again"
    add("segment", "photos", state.photos, state.photos - todo, todo,
        costs.segment.seconds(todo), state.pixels_to_segment * disk.mask_per_pixel, note,
        state.test_masks, costs.segment.load)

    present, deleted = len(state.layouts), state.deleted_layouts
    todo = max(0, s.layouts - present - deleted)
    note = f"{deleted} layout(s) you deleted are not planned again" if deleted else ""
    if not todo and not note:
        note = "enough layouts"
    add("plan", "layouts", s.layouts, min(present + deleted, s.layouts), todo,
        costs.plan.seconds(todo), 0, note, load=costs.plan.load)

    have = sum(1 for i in range(s.items) if i in state.dataset_indices)
    todo = s.items - have
    note = "" if todo else "items you accepted or rejected are kept as they are"
    if state.test_items:
        note = (f"{state.test_items} pictures made with the test models will be rebuilt "
                "(never trained on)")
    add("dataset", "items", s.items, have, todo,
        costs.dataset.seconds(todo, dataset_denoising_steps(s)), todo * disk.item, note,
        min(state.test_items, todo), costs.dataset.load)

    run, key = state.run, run_key(s, params.seed)
    same_run = run is not None and run.key == key and not run.test_models
    done = run.done_steps if same_run and run is not None else 0
    todo = s.train_steps - done
    if same_run and run is not None:
        note = f"run {run.run_id}: " + ("finished" if not todo else f"resumes at step {done}")
    elif run is not None and run.test_models:
        note = f"a new run (run {run.run_id} was trained with the test models)"
    else:
        note = "a new run" + (f" (run {run.run_id} had other settings)" if run else "")
    samples = todo // s.sample_every if s.sample_every else 0
    seconds = costs.train.seconds(todo) + samples * costs.train_sample.seconds(
        1, s.sample_steps + PNDM_EXTRA_CALL)
    # Its parts as the job reports them: a new run encodes the dataset once, then the steps.
    parts: tuple[float, ...] = (seconds - costs.train.load,)
    if todo and not done:
        parts = (s.items * costs.train_cache_per_item, *parts)
        seconds += parts[0]
    add("train", "steps", s.train_steps, done, todo, seconds,
        disk.run + s.items * disk.run_per_item if not done else 0, note,
        1 if run is not None and run.test_models else 0, costs.train.load, parts)

    made = sum(state.pictures_by_batch.values()) if same_run and not todo else 0
    todo_pictures = max(0, s.pictures - made)
    add("generate", "pictures", s.pictures, min(made, s.pictures), todo_pictures,
        costs.generate.seconds(todo_pictures, s.picture_steps + PNDM_EXTRA_CALL),
        todo_pictures * disk.picture,
        f"layout-guided, {s.picture_steps} steps each", load=costs.generate.load)

    scoring = not set(SCORING_ROLES) & set(state.missing_models)
    unscored = len(state.unscored) if same_run else 0
    todo = unscored + todo_pictures if scoring else 0
    note = ("scored as they are made" if scoring else
            "skipped: the scoring models (CLIP, OWL-ViT) are not on this computer")
    add("score", "pictures", s.pictures, max(0, min(made, s.pictures) - unscored), todo,
        costs.score.seconds(todo), 0, note, load=costs.score.load)

    needed = {r for p in stages if p.runs for r in chain_stage(p.stage).needed_roles}
    missing = [r for r in state.missing_models if r in needed or r in SCORING_ROLES]
    total_disk = sum(p.disk_bytes for p in stages)
    download = download_mb(profile, missing)
    return Plan(
        preset=params.preset, profile=profile.name, test_models=profile.test_models,
        device=device.describe(), device_kind=kind, stages=stages,
        seconds=round(sum(p.seconds for p in stages), 1), disk_bytes=total_disk,
        free_disk_bytes=state.free_disk_bytes, estimate=costs.source, measured=costs.measured,
        missing_models=missing,
        download_bytes=None if download is None else round(download * 1e6),
        settings={**s.to_dict(), "seed": params.seed, "batch_prefix": BATCH_PREFIX})


def needed_missing(plan: Plan) -> list[str]:
    """The missing models the stages that will run cannot do without."""
    needed = {r for p in plan.stages if p.runs for r in chain_stage(p.stage).needed_roles}
    return [r for r in plan.missing_models if r in needed]


# --------------------------------------------------------------------------- for people


def format_seconds(seconds: float) -> str:
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s // 60 % 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def format_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def plan_text(plan: Plan) -> str:
    """The plan as the command line prints it (`--dry-run`)."""
    lines = [f"Personalize ({plan.preset}) with profile {plan.profile} on {plan.device}:"]
    for p in plan.stages:
        if p.runs:
            what = f"{p.count} {p.unit}" + (f" ({p.done} there)" if p.done else "")
            cost = f"~{format_seconds(p.seconds)}, {format_bytes(p.disk_bytes)}"
            lines.append(f"  {p.stage:<9} {what:<28} {cost}" + (f"  {p.note}" if p.note else ""))
        else:
            lines.append(f"  {p.stage:<9} nothing to do" + (f" ({p.note})" if p.note else ""))
    free = (f" of {format_bytes(plan.free_disk_bytes)} free" if plan.free_disk_bytes is not None
            else "")
    lines.append(f"  total     ~{format_seconds(plan.seconds)}, {format_bytes(plan.disk_bytes)}"
                 f"{free}")
    lines.append(f"  ({plan.estimate})")
    if plan.missing_models:
        size = (f"about {format_bytes(plan.download_bytes)} to download, "
                if plan.download_bytes else "")
        lines.append(f"  missing models: {', '.join(plan.missing_models)} "
                     f"({size}mycanvas models download {plan.profile})")
    if plan.test_models:
        lines.append("  test models: every stage runs, but the pictures are noise")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the job


def calibration_for(device: DevicePlan, profile: Profile, measure: bool = True,
                    log: Callable[[str], None] | None = None) -> Calibration | None:
    """This machine's calibration where the plan's figures come from it (a CPU, a profile with
    real models): the stored one, or, when there is none and `measure`, one measured now
    (a few seconds)."""
    from engine.personalize.calibration import calibrate_device, load_calibration

    if device.device != "cpu" or profile.test_models:
        return None
    found = load_calibration(device.cpu_kind or "avx2", log=log)
    if found is not None or not measure:
        return found
    if log:
        log("Measuring this computer's speed once for the plan (a few seconds)")
    return calibrate_device(device)


def timings_for(device: DevicePlan) -> StageTimings:
    """What the stages took on this machine before (engine.personalize.timings)."""
    from engine.personalize.timings import load_timings

    return load_timings(device.cpu_kind or "avx2")


def plan_for(params: PersonalizeParams, log: Callable[[str], None] | None = None) -> Plan:
    """The plan of `params` for its project, device and profile, as the chain sees them."""
    from engine.jobs.stage_setup import resolve_stage
    from engine.personalize.state import read_chain_state
    from engine.project import Project

    setup = resolve_stage(params)
    assert setup.device is not None
    with Project.open(params.project) as proj:
        state = read_chain_state(proj, setup.profile, setup.overrides)
    calibration = calibration_for(setup.device, setup.profile, log=log)
    return personalize_plan(state, params, setup.device, setup.profile, calibration,
                            timings_for(setup.device))


def personalize_plan_job(ctx: JobContext, params: PersonalizeParams) -> Plan:
    """Job: the plan, nothing done."""
    ctx.progress(0, 1, "reading the project")
    plan = plan_for(params, ctx.log)
    ctx.progress(1, 1, "planned")
    return plan
