"""Dataset builder benchmarks: seconds per item and peak RSS on the CPU, ours vs plain diffusers.

For the tiny profile and for SD 1.5's full-size inpainting architecture (random weights, a
few steps), two fresh processes each (so each peak RSS is its own):

* ours: the builder job end to end (compose, inpaint, caption, filter, store), after a
  warm-up item; then our inpainting wrapper alone (mask prep, pipeline, paste-back) on a
  fixed composite.
* plain: `pipe(prompt, image, mask_image, num_inference_steps=k, ...)` on the same model,
  composite, mask, steps, strength, guidance and memory savers, after a warm-up call.

The ratio wrapper / plain is the overhead our code adds to the pipeline (target <= 1.1).
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from run import REPO, benchmark

TESTS = REPO / "tests"
PROMPT = "a photo of a wooden table in a sunlit kitchen, natural light, high quality"


def _setup_child() -> None:
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))


def _project_and_composite(root: Path, size: int) -> tuple[Path, Any]:
    from dataset_project import make_dataset_project

    from engine.dataset.compose import compose, concept_cutout_masks, load_cutout
    from engine.project import Project

    project_dir = make_dataset_project(root, photo_side=max(160, size))
    with Project.open(project_dir) as project:
        layout = project.layouts()[0]
        cutouts = {o.concept_id: load_cutout(project, concept_cutout_masks(project,
                                                                           o.concept_id)[0])
                   for o in layout.objects}
    return project_dir, compose(layout, cutouts, size, 1234)


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_ours(model_dir: str, size: int, steps: int, repeats: int, work: str) -> dict:
    """Child process: the builder per item, then our wrapper per item."""
    _setup_child()
    from engine.dataset.build import build_dataset_job
    from engine.dataset.inpaint import InpaintSettings
    from engine.dataset.jobs import BuildDatasetParams
    from engine.jobs import JobContext
    from engine.models.tiny import ensure_tiny_models

    ensure_tiny_models(roles=["clip"])  # the filter's CLIP check runs, as for a user
    ctx = JobContext("bench", lambda _e: None)
    params = {"profile": "tiny", "device": "cpu", "steps": steps, "resolution": size,
              "overrides": {"inpaint": model_dir}}
    warm_dir, composite = _project_and_composite(Path(work) / "warm", size)
    # The first build loads the models: not timed.
    build_dataset_job(ctx, BuildDatasetParams(project=str(warm_dir), count=1, **params))
    timed_dir, _ = _project_and_composite(Path(work) / "timed", size)
    t0 = time.perf_counter()
    build_dataset_job(ctx, BuildDatasetParams(project=str(timed_dir), count=repeats, **params))
    builder = (time.perf_counter() - t0) / repeats
    inpainter = next(ctx.models.get(k) for k in ctx.models.loaded_keys() if k.role == "inpaint")
    settings = InpaintSettings(steps=steps)
    times = []
    for seed in range(repeats):
        t0 = time.perf_counter()
        inpainter.paint(composite, PROMPT, settings, seed)
        times.append(time.perf_counter() - t0)
    return {"builder": builder, "wrapper": statistics.median(times), "rss": _peak_rss(),
            "savers": inpainter.plan.describe()}


def measure_plain(model_dir: str, size: int, steps: int, repeats: int, work: str) -> dict:
    """Child process: the diffusers pipeline called directly."""
    _setup_child()
    import torch

    from engine.dataset.inpaint import InpaintSettings, seam_masks
    from engine.device import apply_memory_savers, plan_device
    from engine.models.loaders import load_inpaint

    _project_dir, composite = _project_and_composite(Path(work) / "plain", size)
    settings = InpaintSettings(steps=steps)
    mask = seam_masks(composite.keep_mask, settings).repaint
    pipe = apply_memory_savers(load_inpaint(model_dir, "cpu"), plan_device("cpu"))

    def call(seed: int) -> Any:
        return pipe(prompt=PROMPT, negative_prompt=settings.negative_prompt,
                    image=composite.image, mask_image=mask, height=size, width=size,
                    strength=settings.strength, guidance_scale=settings.guidance,
                    num_inference_steps=steps,
                    generator=torch.Generator("cpu").manual_seed(seed)).images[0]

    call(0)  # warm-up
    times = []
    for seed in range(repeats):
        t0 = time.perf_counter()
        call(seed + 1)
        times.append(time.perf_counter() - t0)
    return {"plain": statistics.median(times), "rss": _peak_rss()}


def _in_child(fn: Any, *args: Any) -> dict:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _rows(label: str, model_dir: Path, size: int, steps: int, repeats: int,
          work: Path) -> list[dict]:
    ours = _in_child(measure_ours, str(model_dir), size, steps, repeats, str(work / "ours"))
    plain = _in_child(measure_plain, str(model_dir), size, steps, repeats, str(work / "plain"))
    ratio = ours["wrapper"] / plain["plain"]
    where = f"{size} px, {steps} steps, CPU; {ours['savers']}"
    return [
        {"metric": f"{label}: builder, s/item (compose+inpaint+caption+filter+store)",
         "value": ours["builder"], "unit": "s", "note": where},
        {"metric": f"{label}: our inpaint wrapper, s/item", "value": ours["wrapper"],
         "unit": "s", "note": f"median of {repeats}"},
        {"metric": f"{label}: plain diffusers pipe(), s/item", "value": plain["plain"],
         "unit": "s", "note": f"median of {repeats}"},
        {"metric": f"{label}: wrapper / plain", "value": ratio, "unit": "x", "target": "<= 1.1",
         "note": f"builder / plain {ours['builder'] / plain['plain']:.2f}x"},
        {"metric": f"{label}: peak RSS, ours (builder + wrapper)", "value": ours["rss"] / 2**20,
         "unit": "MiB"},
        {"metric": f"{label}: peak RSS, plain pipeline", "value": plain["rss"] / 2**20,
         "unit": "MiB"},
    ]


@benchmark("dataset")
def dataset() -> list[dict]:
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from sd15_random import build_sd15_inpaint_random

    from engine.models.tiny import ensure_tiny_models

    work = Path(tempfile.mkdtemp(prefix="bench-dataset-"))
    try:
        tiny = ensure_tiny_models(roles=["inpaint", "clip"])["inpaint"]
        rows = _rows("tiny", tiny, 64, 20, 10, work / "tiny")
        t0 = time.perf_counter()
        full = build_sd15_inpaint_random(work / "sd15-inpaint")
        built = time.perf_counter() - t0
        rows += _rows("SD 1.5 full size", full, 512, 3, 2, work / "full")
        rows.append({"metric": "SD 1.5 full size: build + save random weights", "value": built,
                     "unit": "s", "note": "once, not part of the per-item numbers"})
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)
