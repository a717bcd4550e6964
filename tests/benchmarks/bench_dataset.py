"""Dataset builder benchmarks: seconds per item and peak RSS on the CPU, ours vs plain diffusers.

For the tiny profile and for SD 1.5's full-size inpainting architecture (random weights, a
few steps), two fresh processes each (so each peak RSS is its own):

* ours: the builder job end to end (compose, inpaint, caption, filter, store), after a
  warm-up item; then our inpainting wrapper alone (mask prep, pipeline, paste-back) on a
  fixed composite.
* plain: the upstream library alone: diffusers' own `StableDiffusionInpaintPipeline` loaded
  from the same folder with its default settings and our precision, called
  `pipe(prompt, image, mask_image, num_inference_steps=k, ...)` on the same composite, mask,
  steps, strength and guidance, after a warm-up call.

Ours and plain run in fresh processes, interleaved round by round (ours first, then plain
first); the rows give min and median, the CPU model and the threads.

The ratio wrapper / plain is the overhead our code adds to the pipeline (target <= 1.1).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from fullsize import sd15_folders
from machine import spread, where
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
    return {"builder": builder, "wrapper": times, "rss": _peak_rss(),
            "savers": inpainter.plan.describe()}


def measure_plain(model_dir: str, size: int, steps: int, repeats: int, work: str) -> dict:
    """Child process: the peer, from the upstream library alone: diffusers' own
    StableDiffusionInpaintPipeline loaded from the same folder, its default settings, the
    precision our device plan computes in (its autocast, if any)."""
    _setup_child()
    import diffusers
    import torch

    from engine.dataset.inpaint import InpaintSettings, seam_masks
    from engine.device import inference_autocast, plan_device

    _project_dir, composite = _project_and_composite(Path(work) / "plain", size)
    settings = InpaintSettings(steps=steps)
    mask = seam_masks(composite.keep_mask, settings).repaint
    pipe = diffusers.StableDiffusionInpaintPipeline.from_pretrained(
        model_dir, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    plan = plan_device("cpu")

    def call(seed: int) -> Any:
        with torch.no_grad(), inference_autocast(plan):
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
    return {"plain": times, "rss": _peak_rss()}


def _in_child(fn: Any, *args: Any) -> dict:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _rows(label: str, model_dir: Path, size: int, steps: int, repeats: int,
          work: Path, rounds: int = 2) -> list[dict]:
    """Ours and the peer in fresh processes (each peak RSS its own), interleaved: round r
    runs ours then the peer, the next round the peer first."""
    ours: dict[str, Any] = {"builder": [], "wrapper": [], "rss": 0}
    plain: dict[str, Any] = {"plain": [], "rss": 0}
    for r in range(rounds):
        order = ("ours", "plain") if r % 2 == 0 else ("plain", "ours")
        for name in order:
            if name == "ours":
                got = _in_child(measure_ours, str(model_dir), size, steps, repeats,
                                str(work / f"ours-{r}"))
                ours["builder"].append(got["builder"])
                ours["wrapper"] += got["wrapper"]
                ours["savers"] = got["savers"]
            else:
                got = _in_child(measure_plain, str(model_dir), size, steps, repeats,
                                str(work / f"plain-{r}"))
                plain["plain"] += got["plain"]
            target = ours if name == "ours" else plain
            target["rss"] = max(target["rss"], got["rss"])
    wrapper, peer = statistics.median(ours["wrapper"]), statistics.median(plain["plain"])
    builder = statistics.median(ours["builder"])
    here = f"{size} px, {steps} steps, CPU; {ours['savers']}"
    return [
        {"metric": f"{label}: builder, s/item (compose+inpaint+caption+filter+store)",
         "value": builder, "unit": "s", "note": f"{here}; {where()}"},
        {"metric": f"{label}: our inpaint wrapper, s/item", "value": wrapper,
         "unit": "s", "note": spread(ours["wrapper"])},
        {"metric": f"{label}: plain diffusers pipe(), s/item", "value": peer,
         "unit": "s", "note": f"{spread(plain['plain'])}; diffusers' own pipeline from the "
                              "same folder, its defaults, our precision"},
        {"metric": f"{label}: wrapper / plain", "value": wrapper / peer, "unit": "x",
         "target": "<= 1.1", "note": f"builder / plain {builder / peer:.2f}x; min/min "
                                     f"{min(ours['wrapper']) / min(plain['plain']):.2f}x"},
        {"metric": f"{label}: peak RSS, ours (builder + wrapper)", "value": ours["rss"] / 2**20,
         "unit": "MiB"},
        {"metric": f"{label}: peak RSS, plain pipeline", "value": plain["rss"] / 2**20,
         "unit": "MiB"},
    ]


@benchmark("dataset")
def dataset() -> list[dict]:
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from engine.models.tiny import ensure_tiny_models
    from engine.paths import data_dir

    work = Path(tempfile.mkdtemp(prefix="bench-dataset-"))
    try:
        tiny = ensure_tiny_models(roles=["inpaint", "clip"])["inpaint"]
        rows = _rows("tiny", tiny, 64, 20, 5, work / "tiny")
        if os.environ.get("MYCANVAS_BENCH_SKIP_FULL"):
            return rows
        full, _base = sd15_folders(data_dir() / "bench-sd15-random")
        rows += _rows("SD 1.5 full size", full, 512, 3, 1, work / "full")
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)
