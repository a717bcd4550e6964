"""Personalize's plan and presets: a pure function of what is done, the parameters, the
device and the profile (no project, no models); and its progress bar across the stages."""

from __future__ import annotations

import pytest

from engine.device import DevicePlan
from engine.errors import InputError
from engine.models.profiles import get_profile
from engine.personalize import PersonalizeParams, personalize_plan
from engine.personalize.costs import TINY, cost_table
from engine.personalize.planning import needed_missing, plan_text, run_key
from engine.personalize.presets import device_kind, preset_settings
from engine.personalize.state import ChainState, RunState, picture_batch

CPU = DevicePlan("cpu", "float32", 8 << 30, False, False, False, cpu_kind="avx2")
CPU_BF16 = DevicePlan("cpu", "float32", 8 << 30, False, False, False,
                      autocast_dtype="bfloat16", cpu_kind="avx512-bf16")
SD15_CPU = cost_table("sd15", "cpu", "avx2")
GPU = DevicePlan("cuda", "float16", 12 << 30, False, False, False)


def params(**kw) -> PersonalizeParams:
    return PersonalizeParams(project="/nowhere", **kw)


def fresh(**kw) -> ChainState:
    """A project with only photos: 3 concepts, 4 photos, nothing else."""
    base = dict(concepts=3, photos=4, photos_to_segment=4, pixels_to_segment=400_000,
                layouts=(), planned_layouts=(), dataset_indices=frozenset(), run=None,
                pictures_by_batch={}, pictures=(), unscored=(), free_disk_bytes=10**11)
    return ChainState(**{**base, **kw})


def stage(plan, name):
    return next(s for s in plan.stages if s.stage == name)


def test_a_photos_only_project_plans_every_stage_with_the_presets_counts():
    plan = personalize_plan(fresh(), params(preset="quick"), CPU, get_profile("tiny"))
    quick = preset_settings("tiny", "cpu", "quick")
    assert [s.stage for s in plan.stages] == ["segment", "plan", "dataset", "train",
                                              "generate", "score"]
    assert all(s.runs for s in plan.stages)
    counts = {s.stage: s.count for s in plan.stages}
    assert counts == {"segment": 4, "plan": quick.layouts, "dataset": quick.items,
                      "train": quick.train_steps, "generate": quick.pictures,
                      "score": quick.pictures}
    assert plan.seconds == pytest.approx(sum(s.seconds for s in plan.stages), abs=0.2)
    assert plan.disk_bytes == sum(s.disk_bytes for s in plan.stages) > 0
    assert plan.measured and plan.test_models and plan.device_kind == "cpu"
    assert plan.settings["train_steps"] == quick.train_steps and plan.settings["seed"] == 0


def test_each_stage_costs_what_the_cost_table_says():
    s = preset_settings("sd15", "cpu", "quick")
    plan = personalize_plan(fresh(), params(preset="quick"), CPU, get_profile("sd15"))
    steps_run = int(s.dataset_steps * 0.9) + 1  # PNDM calls the UNet once more
    assert stage(plan, "dataset").seconds == pytest.approx(
        SD15_CPU.dataset.load + s.items * (SD15_CPU.dataset.per_unit
                                           + steps_run * SD15_CPU.dataset.per_step), abs=0.1)
    assert stage(plan, "train").seconds == pytest.approx(
        SD15_CPU.train.load + s.train_steps * SD15_CPU.train.per_unit
        + s.items * SD15_CPU.train_cache_per_item, abs=0.1)
    assert stage(plan, "generate").seconds == pytest.approx(
        SD15_CPU.generate.seconds(s.pictures, s.picture_steps + 1), abs=0.1)
    assert stage(plan, "segment").disk_bytes == int(400_000 * 1.7)


def test_presets_grow_and_follow_the_device():
    sd15 = get_profile("sd15")
    plans = {p: personalize_plan(fresh(), params(preset=p), CPU, sd15)
             for p in ("quick", "standard", "best")}
    assert plans["quick"].seconds < plans["standard"].seconds < plans["best"].seconds
    bf16 = personalize_plan(fresh(), params(preset="quick"), CPU_BF16, sd15)
    gpu = personalize_plan(fresh(), params(preset="quick"), GPU, sd15)
    assert bf16.device_kind == "cpu-bf16" and bf16.seconds < plans["quick"].seconds
    # a GPU makes more in less time, and its figures are an estimate, said so
    assert stage(gpu, "train").count > stage(plans["quick"], "train").count
    assert gpu.seconds < bf16.seconds
    assert not gpu.measured and "estimate" in gpu.estimate
    # before this machine is calibrated, a CPU plan says it is a rough estimate
    assert not plans["quick"].measured and "rough estimate" in plans["quick"].estimate
    assert [device_kind(p) for p in (CPU, CPU_BF16, GPU)] == ["cpu", "cpu-bf16", "gpu"]
    assert cost_table("tiny", "gpu") is TINY and cost_table("tiny", "cpu-bf16") is TINY


def test_the_sd15_cpu_quick_preset_is_hours_not_days():
    """Rough estimates (no calibration) for SD 1.5 on one thread of each kind of CPU."""
    sd15 = get_profile("sd15")
    fp32 = personalize_plan(fresh(), params(preset="quick"), CPU, sd15).seconds
    bf16 = personalize_plan(fresh(), params(preset="quick"), CPU_BF16, sd15).seconds
    assert 2 * 3600 < fp32 < 12 * 3600
    assert 1 * 3600 < bf16 < fp32


def test_what_is_done_is_not_planned_again():
    run = RunState(run_id=7, status="finished", steps=30, done_steps=30,
                   key=run_key(preset_settings("tiny", "cpu", "quick"), 0))
    state = fresh(photos_to_segment=0, pixels_to_segment=0, layouts=(1, 2, 3),
                  planned_layouts=(1, 2, 3), dataset_indices=frozenset(range(6)), run=run,
                  pictures_by_batch={picture_batch(7, 1): 1, picture_batch(7, 2): 1,
                                     picture_batch(7, 3): 1})
    plan = personalize_plan(state, params(preset="quick"), CPU, get_profile("tiny"))
    assert plan.nothing_to_do and plan.seconds == 0 and plan.disk_bytes == 0
    assert "nothing to do" in plan_text(plan)


def test_layouts_the_user_deleted_are_not_planned_again():
    state = fresh(layouts=(1, 3), planned_layouts=(1, 2, 3))
    plan = personalize_plan(state, params(preset="quick"), CPU, get_profile("tiny"))
    assert state.deleted_layouts == 1 and state.chain_layouts == (1, 3)
    assert stage(plan, "plan").count == 0 and "deleted" in stage(plan, "plan").note
    more = personalize_plan(state, params(preset="quick", layouts=5), CPU, get_profile("tiny"))
    assert stage(more, "plan").count == 2  # 5 wanted: 2 there, 1 deleted by the user


def test_a_partial_dataset_builds_only_the_missing_items():
    plan = personalize_plan(fresh(dataset_indices=frozenset({0, 1, 4, 9})),
                            params(preset="quick"), CPU, get_profile("tiny"))
    dataset = stage(plan, "dataset")
    assert (dataset.target, dataset.done, dataset.count) == (6, 3, 3)


def test_the_chains_unfinished_run_resumes_and_other_settings_train_a_new_one():
    quick = preset_settings("tiny", "cpu", "quick")
    half = RunState(run_id=4, status="running", steps=quick.train_steps, done_steps=12,
                    key=run_key(quick, 0))
    plan = personalize_plan(fresh(run=half), params(preset="quick"), CPU, get_profile("tiny"))
    train = stage(plan, "train")
    assert (train.done, train.count) == (12, quick.train_steps - 12)
    assert "resumes at step 12" in train.note and train.disk_bytes == 0
    other = personalize_plan(fresh(run=half), params(preset="quick", seed=5), CPU,
                             get_profile("tiny"))
    assert stage(other, "train").count == quick.train_steps
    assert "a new run" in stage(other, "train").note


def test_missing_models_are_named_and_scoring_without_its_models_is_skipped():
    state = fresh(missing_models=("segmenter", "inpaint", "base", "clip", "detector"))
    plan = personalize_plan(state, params(preset="quick"), CPU, get_profile("sd15"))
    assert needed_missing(plan) == ["inpaint", "base"]
    assert set(plan.missing_models) == {"inpaint", "base", "clip", "detector"}
    score = stage(plan, "score")
    assert not score.runs and "scoring models" in score.note
    assert "mycanvas models download sd15" in plan_text(plan)


def test_counts_given_override_the_preset_and_bad_values_are_refused():
    plan = personalize_plan(fresh(), params(preset="best", items=2, pictures=1, train_steps=5),
                            CPU, get_profile("tiny"))
    assert (stage(plan, "dataset").count, stage(plan, "generate").count,
            stage(plan, "train").count) == (2, 1, 5)
    with pytest.raises(InputError, match="preset"):
        params(preset="fastest")
    with pytest.raises(InputError, match="items"):
        params(items=0)


# --------------------------------------------------------------------------- progress


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_one_bar_across_the_stages_weighted_by_their_estimates():
    from engine.jobs import JobLog, JobPreview, JobProgress, inline_context
    from engine.personalize.progress import SCALE, ChainProgress

    events, clock = [], _Clock()
    ctx = inline_context(events.append)
    progress = ChainProgress(ctx, {"dataset": 30.0, "train": 60.0, "generate": 10.0}, clock)
    sub = progress.context("dataset")
    for step in range(0, 7):
        clock.now += 5.0
        sub.progress(step, 6, f"item {step}")
    sub.log("built")
    from PIL import Image

    sub.preview(Image.new("RGB", (8, 8)), "item 5")
    progress.done("dataset", "done")
    train = progress.context("train")
    clock.now += 30.0
    train.progress(50, 100, "step 50")
    bars = [e for e in events if isinstance(e, JobProgress)]
    assert all(e.job_id == ctx.job_id and e.total == SCALE for e in events
               if isinstance(e, JobProgress))
    assert [e.step for e in bars] == sorted(e.step for e in bars)
    assert bars[6].step == 300  # the dataset's span: 30 of 100 estimated seconds
    assert bars[-1].step == 600  # halfway through training: 30 + 60 / 2
    assert bars[-1].message == "[2/3] Training: step 50"
    # the chain went as estimated so far (60 s for 60 estimated): 50 s left
    assert bars[-1].eta_seconds == pytest.approx(40.0, abs=12.0)
    log = next(e for e in events if isinstance(e, JobLog))
    preview = next(e for e in events if isinstance(e, JobPreview))
    assert (log.text, log.job_id) == ("Dataset: built", ctx.job_id)
    assert preview.caption == "Dataset: item 5"


def test_a_stage_in_parts_and_phases_moves_through_its_span_once():
    from engine.jobs import JobProgress, inline_context
    from engine.personalize.progress import ChainProgress

    events = []
    progress = ChainProgress(inline_context(events.append), {"generate": 100.0})
    for part in ((0.0, 0.5), (0.5, 1.0)):
        sub = progress.context("generate", phases=(3.0, 1.0), part=part)
        sub.progress(0, 2, "loading")  # the picture count while loading
        for step in range(11):
            sub.progress(step, 10, "pictures")
        for step in range(3):
            sub.progress(step, 2, "scoring")
    steps = [e.step for e in events if isinstance(e, JobProgress)]
    assert steps == sorted(steps) and steps[-1] == 1000
    assert steps[11] == 375  # the first part's pictures done: 3/4 of its half


def test_cancel_lands_at_the_next_step_of_the_stage():
    from engine.errors import Cancelled
    from engine.jobs import inline_context
    from engine.personalize.progress import ChainProgress

    ctx = inline_context()
    sub = ChainProgress(ctx, {"train": 1.0}).context("train")
    sub.progress(1, 10)
    ctx.cancel_token.cancel()
    with pytest.raises(Cancelled):
        sub.progress(2, 10)
