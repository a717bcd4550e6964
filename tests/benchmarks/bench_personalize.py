"""One-click Personalize: the chain end to end on the tiny profile, each stage's cost, and the
full-size SD 1.5 parts its CPU estimates rest on (engine/personalize/costs.py).

* personalize-tiny: each preset (quick, standard, best) end to end on a fresh project with
  only the scikit-image photos (cat ×2, mug, rocket), in a fresh process, as the worker's first
  job runs it (torch imported inside it); the plan's estimate beside it.
* personalize-tiny-learning: the best preset twice on fresh projects, each in a fresh process,
  with one store of stage timings (engine/personalize/timings.py) that starts empty: the plan
  against what each stage took, first and second run, and the bar's fraction against the
  elapsed-time fraction at every stage boundary (issue #26: the second run's total within
  25 %, the bar within 10 points).
* personalize-costs: each stage's job function called on its own, in order, with one warm
  cache (as the chain runs them), timed from its progress events: load = time to the first
  unit done less one unit; per unit = the rate between the first and the last; dataset items
  and pictures at two step counts give the cost per denoising step. These are the TINY
  figures of costs.py.
* personalize-sd15-parts: one SD 1.5 UNet call with guidance (inpainting shape, batch 2, 64²
  latents) and the VAE at 512 px, float32 and bf16 autocast, random weights. ~4 GB: run it
  under `flock /tmp/mycanvas-heavy.lock`.

One thread per process (OMP_NUM_THREADS=1), as everywhere here; other work may share the two
cores, so figures vary by ±20 % from run to run.
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from fullsize import sd15_folders
from run import REPO, benchmark

TESTS = REPO / "tests"
sys.path.insert(0, str(TESTS))

from photos_project import make_photos_only_project  # noqa: E402  (tests/ on the path first)


def _in_child(fn: Any, *args: Any) -> Any:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# --------------------------------------------------------------------------- end to end


def chain_end_to_end(preset: str) -> dict:
    """Child: the personalize job on a fresh photos-only project, as a worker's first job."""
    began = time.perf_counter()
    from engine.jobs import JobFinished, JobSpec, inline_context, run_job
    from engine.personalize import plan_for

    root = Path(tempfile.mkdtemp(prefix="bench-personalize-"))
    try:
        folder = make_photos_only_project(root / "project", "Personalize benchmark")
        params = {"project": str(folder), "profile": "tiny", "device": "cpu",
                  "preset": preset}
        spec = JobSpec("personalize", params)
        plan = plan_for(spec.params)  # type: ignore[arg-type]
        start = time.perf_counter()
        end = run_job(spec, inline_context(job_id=spec.job_id))
        seconds = time.perf_counter() - start
        assert isinstance(end, JobFinished), getattr(end, "detail", end)
        stages = {o.stage: o.seconds for o in end.result.stages}
        return {"seconds": seconds, "with_setup": time.perf_counter() - began,
                "estimate": plan.seconds, "stages": stages,
                "estimates": {s.stage: s.seconds for s in plan.stages},
                "pictures": len(end.result.generation_ids), "scored": end.result.scored}
    finally:
        shutil.rmtree(root, ignore_errors=True)


@benchmark("personalize-tiny")
def tiny_presets() -> list[dict]:
    from engine.models.tiny import ensure_tiny_models

    ensure_tiny_models()  # built once, outside the timings (a first start builds them)
    rows = []
    for preset in ("quick", "standard", "best"):
        got = _in_child(chain_end_to_end, preset)
        per_stage = ", ".join(f"{k} {v:.1f}/{got['estimates'][k]:.1f}"
                              for k, v in got["stages"].items())
        rows.append({"metric": f"tiny, preset {preset}: personalize end to end, 2-core CPU",
                     "value": got["seconds"], "unit": "s",
                     "target": "a few minutes" if preset == "quick" else "",
                     "note": f"plan estimated {got['estimate']:.1f} s; {got['pictures']} "
                             f"pictures, {got['scored']} scored; stage s measured/estimated: "
                             f"{per_stage}; process start + torch import "
                             f"+{got['with_setup'] - got['seconds']:.1f} s"})
    return rows


# --------------------------------------------------------------------------- learning


def chain_with_timeline(preset: str, timings_file: str) -> dict:
    """Child: the personalize job on a fresh photos-only project, with the stage timings
    kept in `timings_file`; its plan, what each stage took and the bar at each boundary."""
    import engine.personalize.timings as timings_module
    from engine.jobs import JobContext, JobFinished, JobProgress, JobSpec, run_job
    from engine.personalize import plan_for

    timings_module.timings_path = lambda: Path(timings_file)  # type: ignore[assignment]
    root = Path(tempfile.mkdtemp(prefix="bench-personalize-learning-"))
    try:
        folder = make_photos_only_project(root / "project", "Personalize benchmark")
        spec = JobSpec("personalize", {"project": str(folder), "profile": "tiny",
                                       "device": "cpu", "preset": preset})
        plan = plan_for(spec.params)  # type: ignore[arg-type]
        events: list[tuple[float, int, int, str]] = []
        start = time.perf_counter()

        def sink(event: Any) -> None:
            if isinstance(event, JobProgress):
                events.append((time.perf_counter() - start, event.step, event.total,
                               event.message))

        end = run_job(spec, JobContext(spec.job_id, sink))
        seconds = time.perf_counter() - start
        assert isinstance(end, JobFinished), getattr(end, "detail", end)
        ends: dict[str, tuple[float, float]] = {}  # stage -> its last event: the chain's
        for t, step, total, message in events:    # "done" or "skipped" moves the bar to its end
            if message.startswith("["):
                ends[message.split("]")[1].split(":")[0].strip()] = (t / seconds, step / total)
        boundaries = [(stage, elapsed, bar) for stage, (elapsed, bar) in ends.items()]
        return {"seconds": seconds, "estimate": plan.seconds,
                "stages": {o.stage: o.seconds for o in end.result.stages},
                "estimates": {s.stage: s.seconds for s in plan.stages},
                "boundaries": boundaries}
    finally:
        shutil.rmtree(root, ignore_errors=True)


@benchmark("personalize-tiny-learning")
def tiny_learning() -> list[dict]:
    from engine.models.tiny import ensure_tiny_models

    ensure_tiny_models()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-timings-") as folder:
        timings = str(Path(folder) / "stage_timings.json")
        for run in (1, 2):
            got = _in_child(chain_with_timeline, "best", timings)
            per_stage = ", ".join(f"{k} {v:.1f}/{got['estimates'][k]:.1f}"
                                  for k, v in got["stages"].items())
            rows.append({"metric": f"tiny best, run {run}: took / planned",
                         "value": got["seconds"] / got["estimate"], "unit": "x",
                         "target": "0.75-1.25" if run == 2 else "",
                         "note": f"took {got['seconds']:.1f} s, planned {got['estimate']:.1f} "
                                 f"s; stage s took/planned: {per_stage}"})
            gaps = [(stage, 100 * (bar - elapsed), elapsed)
                    for stage, elapsed, bar in got["boundaries"]]
            worst = max((abs(g) for _s, g, _e in gaps), default=0.0)
            rows.append({"metric": f"tiny best, run {run}: bar - elapsed at stage ends",
                         "value": worst, "unit": "points (worst)",
                         "target": "<= 10" if run == 2 else "",
                         "note": "; ".join(f"{stage} at {100 * e:.0f} % of the time: bar "
                                           f"{g:+.1f}" for stage, g, e in gaps)})
    return rows


# --------------------------------------------------------------------------- stage costs


class _Timeline:
    """Progress events of one job function call, with their times."""

    def __init__(self) -> None:
        self.events: list[tuple[float, int, int]] = []
        self.began = time.perf_counter()

    def __call__(self, event: Any) -> None:
        from engine.jobs import JobProgress

        if isinstance(event, JobProgress):
            self.events.append((time.perf_counter() - self.began, event.step, event.total))

    def unit_times(self, units: int) -> list[float]:
        """When unit 1..units was complete: the first event at or past its share of the
        last total (the phase of a job whose total changes, e.g. generation then scores)."""
        total = self.events[-1][2] if self.events else 0
        per = total / units if units else 0
        times = []
        for u in range(1, units + 1):
            times.append(next(t for t, s, tot in self.events if tot == total and
                              s >= u * per - 1e-9))
        return times


def _fit(times: list[float]) -> tuple[float, float]:
    """(load, per unit) from the completion times of units 1..n."""
    n = len(times)
    per = (times[-1] - times[0]) / (n - 1) if n > 1 else times[0]
    return max(0.0, times[0] - per), per


def stage_costs() -> dict:
    """Child: each stage's job function in turn, one warm cache, timed."""
    from engine.dataset import BUILD_DATASET, BuildDatasetParams
    from engine.generate import GENERATE, GenerateParams
    from engine.jobs import JobContext, resolve_job
    from engine.jobs.warm_cache import WarmCache
    from engine.plan import PLAN, PlanParams
    from engine.project import Project
    from engine.score import SCORE, ScoreParams
    from engine.segment import SEGMENT, SegmentParams
    from engine.train import TRAIN, TrainParams

    root = Path(tempfile.mkdtemp(prefix="bench-personalize-costs-"))
    models, cache = WarmCache(), {}
    common = {"profile": "tiny", "device": "cpu"}

    def call(decl: Any, params: Any) -> tuple[Any, _Timeline]:
        timeline = _Timeline()
        ctx = JobContext("bench", timeline, cache=cache, models=models)
        return resolve_job(decl.target)(ctx, params), timeline

    try:
        import torch  # noqa: F401 - imported before the timings (the worker has it)

        folder = str(make_photos_only_project(root / "project", "Personalize benchmark"))
        out: dict[str, Any] = {}
        _r, tl = call(SEGMENT, SegmentParams(project=folder, **common))
        out["segment"] = _fit(tl.unit_times(4))
        _r, tl = call(PLAN, PlanParams(project=folder, profile="tiny", count=4, seed=0))
        out["plan"] = _fit(tl.unit_times(4))
        items = {}
        for count, steps in ((6, 8), (12, 20)):
            _r, tl = call(BUILD_DATASET, BuildDatasetParams(project=folder, **common,
                                                            count=count, steps=steps))
            items[int(steps * 0.9)] = _fit(tl.unit_times(6))
        (s1, (load, p1)), (s2, (_l2, p2)) = sorted(items.items())
        per_step = (p2 - p1) / (s2 - s1)
        out["dataset"] = (load, p1 - s1 * per_step, per_step)
        run, tl = call(TRAIN, TrainParams(project=folder, **common, config={
            "steps": 30, "sample_every": 0, "checkpoint_every": 6}))
        out["train"] = _fit(tl.unit_times(30))
        with Project.open(folder) as project:
            layout = project.layouts()[0].id
        pictures, made = {}, []
        for steps, seed in ((8, 0), (20, 10)):
            result, tl = call(GENERATE, GenerateParams(
                project=folder, **common, run_id=run.run_id, layout_id=layout,
                seeds=[seed, seed + 1, seed + 2], steps=steps, batch=f"bench-{steps}"))
            made += result.generation_ids
            # the first phase's events only: pictures (scores follow with their own total)
            tl.events = _first_phase(tl.events)
            pictures[steps] = _fit(tl.unit_times(3))
        (g1, (gload, q1)), (g2, (_gl2, q2)) = sorted(pictures.items())
        gstep = (q2 - q1) / (g2 - g1)
        out["generate"] = (gload, q1 - g1 * gstep, gstep)
        _r, tl = call(SCORE, ScoreParams(project=folder, **common, generation_ids=made,
                                         rescore=True, batch_size=1))
        out["score"] = _fit(tl.unit_times(len(made)))
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _first_phase(events: list[tuple[float, int, int]]) -> list[tuple[float, int, int]]:
    """The pictures' events: the total of the first step made (loading reports 0 of the
    picture count; scores follow with a total of their own)."""
    total = next(tot for _t, step, tot in events if step > 0)
    return [e for e in events if e[2] == total]


@benchmark("personalize-costs")
def tiny_costs() -> list[dict]:
    from engine.models.tiny import ensure_tiny_models

    ensure_tiny_models()
    got = _in_child(stage_costs)
    rows = []
    for stage, figures in got.items():
        names = ("load", "per unit", "per denoising step")[:len(figures)]
        rows.append({"metric": f"tiny: {stage} cost", "value": figures[1], "unit": "s/unit",
                     "note": ", ".join(f"{n} {v:.3f} s" for n, v in zip(names, figures,
                                                                          strict=True))})
    return rows


# --------------------------------------------------------------------------- SD 1.5 parts


def sd15_parts() -> dict:
    """Child: SD 1.5 UNet (inpainting shape) and VAE at 512 px, random weights."""
    import diffusers
    import torch

    sys.path.insert(0, str(TESTS))
    from sd15_random import SD15_INPAINT_UNET, SD15_VAE

    def timed(fn: Any, reps: int) -> float:
        fn()  # warm-up
        best = float("inf")
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        return best

    def unet_calls() -> dict[str, float]:  # the UNet is freed before the VAE is built
        unet = diffusers.UNet2DConditionModel(**SD15_INPAINT_UNET).eval()
        x, t, text = torch.randn(2, 9, 64, 64), torch.tensor([500, 500]), torch.randn(2, 77, 768)
        got = {"UNet call with guidance (batch 2), float32": timed(lambda: unet(x, t, text), 2)}
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got["UNet call with guidance (batch 2), bf16"] = timed(lambda: unet(x, t, text), 2)
        return got

    torch.manual_seed(0)
    with torch.no_grad():
        out = unet_calls()
        vae = diffusers.AutoencoderKL(**SD15_VAE).eval()
        image, latent = torch.randn(1, 3, 512, 512), torch.randn(1, 4, 64, 64)
        out["VAE encode, float32"] = timed(lambda: vae.encode(image), 1)
        out["VAE decode, float32"] = timed(lambda: vae.decode(latent), 1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out["VAE encode, bf16"] = timed(lambda: vae.encode(image), 1)
            out["VAE decode, bf16"] = timed(lambda: vae.decode(latent), 1)
    return out


@benchmark("personalize-sd15-parts")
def sd15_part_costs() -> list[dict]:
    got = _in_child(sd15_parts)
    return [{"metric": f"SD 1.5 512 px: {name}", "value": value, "unit": "s",
             "note": "random weights, 1 thread, best of 2 after a warm-up"}
            for name, value in got.items()]


# --------------------------------------------------------------------------- SD 1.5 stages


class _UNetCalls:
    """Counts and times every SD 1.5 UNet call in this process (global module hooks)."""

    def __init__(self) -> None:
        import torch

        self.calls, self.seconds, self._began = 0, 0.0, 0.0
        hooks = torch.nn.modules.module
        self._pre = hooks.register_module_forward_pre_hook(self._before)
        self._post = hooks.register_module_forward_hook(self._after)

    def _before(self, module: Any, _args: Any) -> None:
        if type(module).__name__ == "UNet2DConditionModel":
            self._began = time.perf_counter()

    def _after(self, module: Any, _args: Any, _out: Any) -> None:
        if type(module).__name__ == "UNet2DConditionModel":
            self.calls += 1
            self.seconds += time.perf_counter() - self._began

    def take(self) -> tuple[int, float]:
        got = (self.calls, self.seconds)
        self.calls, self.seconds = 0, 0.0
        return got


def sd15_stages(data_dir: str, cache: str, work: str, dataset_steps: int, train_steps: int,
                picture_steps: int) -> dict:
    """Child: calibrate, then run the dataset, train and generate job functions at SD 1.5's
    full size (random weights) with reduced counts, one warm cache as in the chain; each
    stage's seconds beside what the plan's cost table says for the same counts, before and
    after calibration."""
    import os

    os.environ["MYCANVAS_DATA_DIR"] = data_dir
    sys.path.insert(0, str(TESTS))
    import resource

    import torch
    from dataset_project import make_dataset_project

    from engine.dataset.build import build_dataset_job
    from engine.dataset.jobs import BuildDatasetParams
    from engine.device import plan_device
    from engine.generate.generate_job import generate_job
    from engine.generate.jobs import GenerateParams
    from engine.jobs import JobContext
    from engine.personalize.calibration import calibrate_device
    from engine.personalize.costs import cost_table
    from engine.personalize.presets import device_kind
    from engine.project import Project
    from engine.train.jobs import TrainParams
    from engine.train.training_job import train_job

    inpaint, base = sd15_folders(Path(cache))
    plan = plan_device("cpu")
    kind = device_kind(plan)
    rough = cost_table("sd15", kind, plan.cpu_kind, None)
    began = time.perf_counter()
    cal = calibrate_device(plan)
    calibration_seconds = time.perf_counter() - began
    calibrated = cost_table("sd15", kind, plan.cpu_kind, cal)
    folder = make_dataset_project(Path(work) / "project", photo_side=512)
    ctx = JobContext("bench", lambda _e: None)
    common = {"project": str(folder), "profile": "sd15", "device": "cpu",
              "overrides": {"inpaint": str(inpaint), "base": str(base)}}
    unet = _UNetCalls()
    out: dict[str, Any] = {"calibration_s": calibration_seconds, "rates": cal.rates,
                           "cpu": cal.machine["cpu"], "threads": torch.get_num_threads(),
                           "kind": plan.cpu_kind, "device": plan.describe(), "stages": {}}

    def stage(name: str, call: Any, planned: Any) -> Any:
        start, cpu = time.perf_counter(), time.process_time()
        result = call()
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        calls, unet_s = unet.take()
        out["stages"][name] = {"took": took, "cpu": cpu, "unet_calls": calls, "unet_s": unet_s,
                               "rough": planned(rough, calls), "plan": planned(cal_t, calls)}
        return result

    cal_t = calibrated
    stage("dataset", lambda: build_dataset_job(ctx, BuildDatasetParams(
        **common, count=1, steps=dataset_steps, seed=0)),
        lambda t, calls: t.dataset.seconds(1, calls // 1))
    run = stage("train", lambda: train_job(ctx, TrainParams(**common, config={
        "steps": train_steps, "seed": 0, "checkpoint_every": train_steps, "sample_every": 0})),
        lambda t, _calls: t.train.seconds(train_steps) + t.train_cache_per_item)
    with Project.open(folder) as project:
        layout_id = int(project.layouts()[0].id or 0)
    stage("generate", lambda: generate_job(ctx, GenerateParams(
        **common, run_id=run.run_id, layout_id=layout_id, seeds=[0], steps=picture_steps)),
        lambda t, calls: t.generate.seconds(1, calls))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


@benchmark("personalize-sd15-stages")
def sd15_stage_costs() -> list[dict]:
    """The plan's cost model against the stages at full size (see sd15_stages). Heavy: run it
    under `flock /tmp/mycanvas-heavy.lock`."""
    import os

    from engine.paths import data_dir

    cache = data_dir() / "bench-sd15-random"
    work = Path(tempfile.mkdtemp(prefix="bench-sd15-stages-"))
    try:
        got = _in_child(sd15_stages, str(work / "app-data"), str(cache), str(work), 3, 2, 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    where = (f"{got['cpu']} ({got['kind']}), {got['threads']} thread(s), "
             f"{os.cpu_count()} cores shared with other work")
    rows = [{"metric": "calibration (every kernel, each precision)", "value":
             got["calibration_s"], "unit": "s", "note": where}]
    for precision, rates in got["rates"].items():
        rows.append({"metric": f"calibrated speed, {precision}", "value": rates["conv"] / 1e9,
                     "unit": "GFLOP/s conv",
                     "note": f"linear {rates['linear'] / 1e9:.1f}, attention "
                             f"{rates['attention'] / 1e9:.1f} GFLOP/s; norm "
                             f"{rates['norm'] / 1e6:.0f} M elements/s"})
    for name, s in got["stages"].items():
        per_call = s["unet_s"] / s["unet_calls"] if s["unet_calls"] else 0.0
        rows.append({"metric": f"SD 1.5 512 px {name}: measured", "value": s["took"],
                     "unit": "s", "note": f"CPU time {s['cpu']:.0f} s; {s['unet_calls']} UNet "
                                          f"calls, {per_call:.1f} s each; reduced counts, load "
                                          "included"})
        for label in ("plan", "rough"):
            rows.append({"metric": f"SD 1.5 512 px {name}: {label} / measured",
                         "value": s[label] / s["took"], "unit": "x",
                         "target": "0.75-1.25" if label == "plan" else "",
                         "note": f"{label} {s[label]:.0f} s; against CPU time "
                                 f"{s[label] / s['cpu']:.2f}x"
                                 + (" (calibrated)" if label == "plan" else
                                    " (rough, before calibration)")})
    rows.append({"metric": "peak RSS of the stages' process", "value": got["peak_rss_mb"],
                 "unit": "MB", "note": got["device"]})
    return rows
