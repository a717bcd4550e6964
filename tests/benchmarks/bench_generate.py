"""Generation speed: our `generate` job against a plain diffusers call, layout guidance's
overhead, preview cost per step, peak memory, and what the guidance does to attention.

* "ours": the real `generate` job with the model warm in the worker's cache (as the app runs
  it): prompt checks, the run's concepts, progress events, a latent preview every 5 steps,
  the PNG with its recipe, the catalogue row. Per picture: one job makes `n` pictures.
* "plain diffusers": the upstream library alone: its own `StableDiffusionPipeline` loaded
  from the same folder, the same run's concepts put in by its own loaders
  (`load_attn_procs`, `load_textual_inversion`), its default settings (attention, layout,
  scheduler) plus the same precision (our plan's autocast, if any); the same prompt, size,
  steps, guidance and seeds, PIL out. Interleaved with ours, round by round, so both see the
  same machine load; each row gives min and median, the CPU model and the threads.
* layout guidance: the same job with a box per concept (first 30 % of the UNet calls guided).
* preview: the work of one preview (latents to RGB without the VAE, the PNG the event
  carries), against one UNet call timed by hooks during the plain runs.
* attention: the share of each concept's cross-attention inside its box, guided vs unguided,
  the same seeds (engine.generate.measure). On a real project (MYCANVAS_BENCH_PROJECT: a
  finished run, real weights) the same harness adds each concept's CP-CLIP guided vs
  unguided, scored by the score stage; without one a row says so.

Sizes: the tiny profile (64 px, 10 steps), and SD 1.5's architecture with random weights
(256 px, 3 steps; both pipelines loaded from one folder built once, fullsize.py: ~9 GB for
the two).
Peak RSS is the process's high-water mark over each phase (reset through clear_refs).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from fullsize import sd15_folders
from machine import spread, where
from memory import peak_rss_mb, reset_peak_rss
from run import REPO, benchmark

sys.path.insert(0, str(REPO / "tests"))
from generate_project import write_synthetic_export

PROMPT = "<mochi> cat and <cup> mug on a beach"
BOXES = {"mochi": [0.0, 0.1, 0.5, 0.9], "cup": [0.5, 0.3, 1.0, 0.9]}




class Bench:
    """A project with one finished run (a synthetic export of the model's shape); our
    `generate` job, which loads the model from `folder` through our loader into the warm
    cache it keeps (as the worker does); and its peer, built from the upstream library alone:
    diffusers' own StableDiffusionPipeline loaded from the same folder, the run's concepts
    put in by diffusers' own loaders, its default settings, our precision."""

    def __init__(self, folder: Path, profile: str, side: int, steps: int,
                 override: bool = False) -> None:
        import diffusers

        from engine.jobs.warm_cache import WarmCache
        from engine.project import Project, Run
        from engine.train.export import WEIGHTS_NAME, token_file_name

        self.root = Path(tempfile.mkdtemp(prefix="bench-generate-"))
        self.side, self.steps = side, steps
        self.peer = diffusers.StableDiffusionPipeline.from_pretrained(
            str(folder), safety_checker=None, requires_safety_checker=False)
        self.peer.set_progress_bar_config(disable=True)
        with Project.create(self.root / "project", "bench") as project:
            run = project.add_run(Run(kind="custom-diffusion", status="running",
                                      config={"profile": profile}))
            project.update_run(run.id, status="finished", output_dir=f"runs/{run.id}")
        self.run_id = run.id
        concepts = {"<mochi>": "cat", "<cup>": "mug"}
        export = write_synthetic_export(self.root / "project" / "runs" / str(run.id) / "export",
                                        self.peer, concepts, profile)
        self.overrides = {"base": str(folder)} if override else {}
        self.models = WarmCache()
        self.outside: list[float] = []
        self.job(1, 0)  # our model is loaded now, by our loader, and stays warm
        self.model = next(self.models.get(k) for k in self.models.loaded_keys()
                          if k.role == "base")
        self.pipe, self.plan = self.model.pipe, self.model.plan
        self.peer.unet.load_attn_procs(str(export), weight_name=WEIGHTS_NAME,
                                       _pipeline=self.peer)
        for token in concepts:
            self.peer.load_textual_inversion(str(export / token_file_name(token)), token=token)

    def job(self, n: int, seed: int, boxes: dict | None = None) -> Any:
        """The generate job making `n` pictures; the seconds spent outside the diffusers
        call (our own work: checks, progress, previews, PNG, catalogue) go to `outside`."""
        from engine.generate.jobs import GenerateParams
        from engine.jobs import JobContext, JobFinished, JobSpec, run_job

        params = GenerateParams(project=str(self.root / "project"), run_id=self.run_id,
                                prompt=PROMPT, count=n, seed=seed, steps=self.steps,
                                width=self.side, height=self.side, boxes=boxes,
                                overrides=self.overrides, device="cpu")
        spec = JobSpec("generate", params)
        cls = type(self.peer)
        original, inside = cls.__call__, [0.0]

        def timed(pipe: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(pipe, *args, **kwargs)
            finally:
                inside[0] += time.perf_counter() - start

        cls.__call__ = timed
        start = time.perf_counter()
        try:
            end = run_job(spec, JobContext(spec.job_id, lambda _e: None, models=self.models))
        finally:
            cls.__call__ = original
        self.outside.append((time.perf_counter() - start - inside[0]) / n)
        assert isinstance(end, JobFinished), getattr(end, "detail", end)
        return end.result

    def plain(self, n: int, seed: int) -> None:
        """The peer: diffusers' defaults, under our precision's autocast if it has one."""
        import torch

        for k in range(n):
            with self.model.precision.autocast():
                self.peer(PROMPT, height=self.side, width=self.side,
                          num_inference_steps=self.steps, guidance_scale=7.5,
                          generator=torch.Generator("cpu").manual_seed(seed + k))

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _interleaved(variants: dict[str, Any], rounds: int, n: int
                 ) -> tuple[dict, dict, dict[str, list[float]]]:
    """Seconds per picture (median over rounds), peak RSS and every round's seconds per
    variant."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    peaks: dict[str, float] = {}
    for name, fn in variants.items():  # warm-up: first-call allocations, kernel choice
        reset_peak_rss()
        fn(1, 10_000)
        peaks[name] = peak_rss_mb()
    for r in range(rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            start = time.perf_counter()
            variants[name](n, 100 * r)
            times[name].append((time.perf_counter() - start) / n)
    return {name: statistics.median(t) for name, t in times.items()}, peaks, times


def _unet_call_seconds(bench: Bench) -> float:
    """One UNet call (a denoising step with guidance), timed by hooks over a plain run."""
    spans: list[float] = []
    started: list[float] = []
    unet = bench.peer.unet
    pre = unet.register_forward_pre_hook(lambda *_a: started.append(time.perf_counter()))
    post = unet.register_forward_hook(
        lambda *_a: spans.append(time.perf_counter() - started[-1]))
    try:
        bench.plain(1, 0)
    finally:
        pre.remove()
        post.remove()
    return statistics.median(spans)


def _preview_seconds(side: int, reps: int = 30) -> float:
    """One preview as the job makes it: latents to RGB, then the PNG its event carries."""
    import torch

    from engine.generate.preview import latent_preview
    from engine.jobs import inline_context

    ctx = inline_context()
    latents = torch.randn(1, 4, side // 8, side // 8)
    spans = []
    for _ in range(reps):
        start = time.perf_counter()
        image = latent_preview(latents)
        ctx.preview(image, "step")
        spans.append(time.perf_counter() - start)
    return statistics.median(spans)


def _attention_rows(label: str, bench: Bench, seeds: list[int], steps: int) -> list[dict]:
    from engine.generate.measure import compare_layout_guidance
    from engine.generate.recipe import LayoutBox, LayoutSpec, Recipe

    boxes = tuple(LayoutBox.from_corners(f"<{k}>", v) for k, v in BOXES.items())
    recipe = Recipe(run_id=bench.run_id, run_kind="custom-diffusion", run_fingerprint="",
                    profile="", model={}, prompt=PROMPT, negative_prompt="", seed=0,
                    steps=steps, guidance=7.5, width=bench.side, height=bench.side,
                    scheduler="default", layout=LayoutSpec(boxes), precision="", device="cpu",
                    app_version="")
    return _report_rows(label, compare_layout_guidance(bench.model, recipe, seeds), seeds,
                        steps)


def _report_rows(label: str, report: Any, seeds: list[int], steps: int) -> list[dict]:
    rows = []
    for token, windows in report.inside.items():
        for window, values in windows.items():
            rows.append({"metric": f"{label}: {token} attention inside its box, {window}, "
                                   "guided", "value": values["guided"], "unit": "share",
                         "note": f"unguided {values['unguided']:.3f}; seeds {seeds}, "
                                 f"{steps} steps"})
    for token, values in report.scores.items():
        rows.append({"metric": f"{label}: {token} CP-CLIP guided", "value": values["guided"],
                     "unit": "", "note": f"unguided {values['unguided']:.3f}; seeds {seeds}"})
    return rows


def _project_rows(seeds: list[int], steps: int = 30) -> list[dict]:
    """CP-CLIP per concept, guided vs unguided, on a real project: its newest finished run,
    its first two concepts side by side, scored by the score stage. Needs the project
    (MYCANVAS_BENCH_PROJECT) and its profile's real weights (base, clip, detector)."""
    folder = os.environ.get("MYCANVAS_BENCH_PROJECT")
    if not folder:
        return [{"metric": "CP-CLIP per concept, guided vs unguided", "value": "n/a",
                 "unit": "", "note": "set MYCANVAS_BENCH_PROJECT to a project with a finished "
                                     "run (real weights) to measure it"}]
    from engine.generate import load_run_concepts, newest_finished_run
    from engine.generate.jobs import GenerateParams
    from engine.generate.measure import compare_layout_guidance
    from engine.generate.prompts import prompt_for_concepts
    from engine.generate.recipe import LayoutBox, LayoutSpec, Recipe
    from engine.generate.sampler import load_generation_model
    from engine.jobs import inline_context
    from engine.jobs.stage_setup import resolve_stage
    from engine.project import Project
    from engine.score import ScoreParams, picture_scorer

    ctx = inline_context()
    with Project.open(folder) as project:
        run = load_run_concepts(project, newest_finished_run(project))
    setup = resolve_stage(GenerateParams(project=folder, profile=run.profile))
    model = load_generation_model(ctx, setup)
    model.use_run(run)
    left, right = run.concepts[:2]
    boxes = (LayoutBox(left.token, 0.02, 0.2, 0.46, 0.7),
             LayoutBox(right.token, 0.52, 0.2, 0.46, 0.7))
    side = setup.profile.resolution
    recipe = Recipe(run_id=run.run_id or 0, run_kind=run.kind, run_fingerprint=run.fingerprint,
                    profile=run.profile, model=model.info,
                    prompt=prompt_for_concepts(run, [left, right], "on a beach"),
                    negative_prompt="", seed=0, steps=steps, guidance=7.5, width=side,
                    height=side, scheduler="default", layout=LayoutSpec(boxes),
                    precision=model.precision.describe(), device=model.plan.device,
                    app_version="bench")
    with picture_scorer(ctx, ScoreParams(project=folder, profile=run.profile)) as scorer:
        report = compare_layout_guidance(model, recipe, seeds, scorer.concept_cp_clip)
        test = ", test models: the numbers mean nothing" if scorer.test_model else ""
        label = f"project run {run.run_id} ({run.profile}{test})"
    return _report_rows(label, report, seeds, steps)


def _compare(label: str, bench: Bench, rounds: int, n: int, attention_seeds: list[int],
             attention_steps: int) -> list[dict]:
    variants = {"ours": lambda n, s: bench.job(n, s), "plain diffusers": bench.plain,
                "ours, layout-guided": lambda n, s: bench.job(n, s, BOXES)}
    seconds, peaks, runs = _interleaved(variants, rounds, n)
    outside = statistics.median(bench.outside)
    calls = bench.model.calls_per_image(_simple_recipe(bench))
    step = _unet_call_seconds(bench)
    preview = _preview_seconds(bench.side)
    rows = [{"metric": f"{label}: {name} seconds per picture", "value": value, "unit": "s",
             "note": f"{spread(runs[name])} of {n}, interleaved; peak RSS {peaks[name]:.0f}"
                     f" MB; {where()}"} for name, value in seconds.items()]
    rows += [
        {"metric": f"{label}: ours / plain diffusers", "unit": "x", "target": "<= 1.05",
         "value": seconds["ours"] / seconds["plain diffusers"],
         "note": f"{bench.steps} steps ({calls} UNet calls), {bench.side} px, "
                 f"{bench.model.precision.describe()}; ours on {bench.plan.describe()}; the "
                 "peer: diffusers' own pipeline from the same folder, its defaults; min/min "
                 f"{min(runs['ours']) / min(runs['plain diffusers']):.2f}x"},
        {"metric": f"{label}: ours, own work outside the diffusers call", "unit": "ms",
         "value": 1000 * outside,
         "note": f"per picture: {100 * outside / seconds['plain diffusers']:.1f} % of a plain "
                 "call (checks, progress, previews, PNG + recipe, catalogue row); less "
                 "noisy than the ratio"},
        {"metric": f"{label}: layout-guided / unguided (ours)", "unit": "x",
         "target": "<= 1.15", "value": seconds["ours, layout-guided"] / seconds["ours"],
         "note": "2 boxes, 30 % of the UNet calls guided"},
        {"metric": f"{label}: preview cost / UNet call", "unit": "%", "target": "<= 2",
         "value": 100 * preview / step,
         "note": f"one preview {1000 * preview:.2f} ms, one call {step:.3f} s; the job "
                 "previews every 5th step"},
    ]
    if bench.side == 256:  # the preview of a 512 px picture, against the same UNet call
        big = _preview_seconds(512)
        rows.append({"metric": f"{label}: 512 px preview", "unit": "ms", "value": 1000 * big,
                     "note": "a 64x64 latent: independent of the UNet's cost"})
    rows += _attention_rows(label, bench, attention_seeds, attention_steps)
    return rows


def _simple_recipe(bench: Bench) -> Any:
    from engine.generate.recipe import Recipe

    return Recipe(run_id=1, run_kind="custom-diffusion", run_fingerprint="", profile="",
                  model={}, prompt=PROMPT, negative_prompt="", seed=0, steps=bench.steps,
                  guidance=7.5, width=bench.side, height=bench.side, scheduler="default",
                  layout=None, precision="", device="cpu", app_version="")


def _cpu_plan(plan: Any, compute: str) -> Any:
    """`plan` computing in `compute` ("float32" or "bfloat16"), fp32 weights: through the CPU
    policy's autocast_dtype where the plan has that field, else through its dtype."""
    import dataclasses

    if "autocast_dtype" in {f.name for f in dataclasses.fields(plan)}:
        return replace(plan, dtype="float32",
                       autocast_dtype=None if compute == "float32" else compute)
    return replace(plan, dtype=compute)


def _bf16_row(label: str, bench: Bench, rounds: int = 2) -> dict:
    """The same pipeline computing under a bfloat16 CPU plan (fp32 weights, bf16 autocast)
    against fp32, through GenerationModel.generate, interleaved."""
    from engine.generate.precision import inference_precision
    from engine.generate.sampler import GenerationModel

    plans = {dtype: _cpu_plan(bench.plan, dtype) for dtype in ("float32", "bfloat16")}
    models = {dtype: GenerationModel(bench.pipe, plan, inference_precision(plan), {})
              for dtype, plan in plans.items()}
    for model in models.values():
        model.loaded = bench.model.loaded  # the concepts the pipeline holds
    recipe = _simple_recipe(bench)
    times: dict[str, list[float]] = {dtype: [] for dtype in models}
    for r in range(rounds + 1):
        for dtype in (models if r % 2 else reversed(list(models))):
            start = time.perf_counter()
            models[dtype].generate(replace(recipe, seed=r))
            if r:  # round 0 warms up
                times[dtype].append(time.perf_counter() - start)
    fp32, bf16 = (statistics.median(times[d]) for d in ("float32", "bfloat16"))
    return {"metric": f"{label}: bfloat16 CPU plan, seconds per picture", "value": bf16,
            "unit": "s", "note": f"fp32 {fp32:.1f} s: {fp32 / bf16:.2f}x faster with fp32 "
                                 "weights under bf16 autocast (for the CPU-speed issue)"}


@benchmark("generate")
def generate_speed() -> list[dict]:
    import resource

    from engine.models.tiny import ensure_tiny_models

    bench = Bench(ensure_tiny_models(roles=["base"])["base"], "tiny", 64, 10)
    try:
        rows = _compare("tiny 64 px", bench, rounds=15, n=4, attention_seeds=[0, 1, 2, 3],
                        attention_steps=10)
    finally:
        bench.close()
    if os.environ.get("MYCANVAS_BENCH_SKIP_FULL"):
        return rows
    from engine.paths import data_dir

    _inpaint, folder = sd15_folders(data_dir() / "bench-sd15-random")
    bench = Bench(folder, "sd15", 256, 3, override=True)
    try:
        rows += _compare("SD 1.5 arch 256 px", bench, rounds=5, n=1, attention_seeds=[0],
                         attention_steps=3)
        rows.append(_bf16_row("SD 1.5 arch 256 px", bench))
    finally:
        bench.close()
    rows += _project_rows(seeds=[0, 1, 2, 3])
    rows.append({"metric": "peak RSS of the whole benchmark", "unit": "MB",
                 "value": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    return rows
