"""CPU precision: torch float32 against torch bf16 autocast and OpenVINO (f32 and bf16), speed
and agreement, on SD 1.5's full-size architecture (random weights) at 512 px, one thread.

    cpu-precision        UNet step (batch 2, as guidance runs it), VAE decode, one dataset
                         item (our Inpainter, 3 steps) per backend, interleaved in rounds in
                         one process: every backend sees the same load (OpenVINO f32 in a
                         second process, against its own fp32 rounds). torch bf16 runs as a
                         build does (channels-last weights); "NCHW" shows it without. Seconds
                         are medians of the warm rounds (the first is a warm-up). Agreement:
                         relative L2 from float32 (UNet, VAE), mean absolute pixel
                         difference in 0..255 (decode, item: same seed, same steps).
                         The prepare-openvino job (convert, verify, calibrate) in its own
                         process: seconds and peak RSS; one item per backend in its own
                         process: peak RSS as a build has it.
    cpu-precision-train  Custom Diffusion steps in float32 and under bf16 autocast (fp32
                         master weights), two trajectories from the same start, interleaved
                         on one pipeline (each one's trainable state and optimiser swapped in
                         for its step): the tiny profile for 200 steps, the full-size
                         architecture for 5 (after a warm-up step each). The loss band
                         below decided that bf16 training is the default on CPUs with bf16
                         units (engine/train/precision.py).

Full size: run only under `flock /tmp/mycanvas-heavy.lock` (about 8 GB, tens of minutes).
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
ROUNDS = 4  # the first is a warm-up
ITEM_ROUNDS = 3
ITEM_STEPS = 3
# bf16 training becomes the CPU default only if, against float32 over the same steps, every
# step's loss is within STEP_BAND (relative) and the run's mean loss within MEAN_BAND, the
# export loads and matches its own re-load, and a full-size step is >= 1.3x faster.
STEP_BAND, MEAN_BAND = 0.05, 0.01


def _setup_child() -> None:
    for path in (str(TESTS), str(REPO)):
        if path not in sys.path:
            sys.path.insert(0, path)


def _peak_rss_mib(field: str = "VmHWM") -> float:
    """The process's peak RSS (VmHWM), or another /proc/self/status field, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _in_child(fn: Any, *args: Any) -> Any:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _rel_l2(got: Any, want: Any) -> float:
    want = want.float()
    return float((got.float() - want).norm() / want.norm())


def _mad(got: Any, want: Any) -> float:
    """Mean absolute difference in 0..255 of two images in [-1, 1] or uint8 arrays."""
    import numpy as np

    a, b = (np.asarray(x, dtype=np.float64) for x in (got, want))
    if a.max() <= 1.0 + 1e-6 and a.min() < 0:  # decoder output in [-1, 1]
        a, b = (np.clip((x + 1) * 127.5, 0, 255) for x in (a, b))
    return float(np.abs(a - b).mean())


# --------------------------------------------------------------------------- conversion


def measure_prepare(model_dir: str, data_dir: str) -> dict:
    """Child: the prepare-openvino job end to end (load, convert, verify, calibrate)."""
    _setup_child()
    import os

    os.environ["MYCANVAS_DATA_DIR"] = data_dir
    from engine.dataset.jobs import PrepareOpenVinoParams
    from engine.dataset.openvino_prepare import prepare_openvino_job
    from engine.jobs import JobContext

    start = time.perf_counter()
    result = prepare_openvino_job(JobContext("bench", lambda _e: None), PrepareOpenVinoParams(
        profile="sd15", device="cpu", overrides={"inpaint": model_dir}))
    return {"job_seconds": time.perf_counter() - start, "peak": _peak_rss_mib(),
            "result": result.to_dict()}


def measure_item_memory(model_dir: str, ov_dir: str, backend: str, size: int) -> dict:
    """Child: peak RSS of one dataset item as a build runs it, on one backend only."""
    _setup_child()
    from test_compose import CUTOUTS, LAYOUT

    from engine.dataset.compose import compose
    from engine.dataset.inpaint import Inpainter, InpaintSettings
    from engine.dataset.openvino_models import openvino_inpaint_pipeline
    from engine.device import CpuFacts, plan_device
    from engine.models.loaders import load_inpaint

    plan = plan_device("cpu", cpu=CpuFacts("x86_64", ("avx512_bf16",)))
    if backend == "openvino":
        pipe = openvino_inpaint_pipeline(Path(ov_dir), Path(model_dir), "bf16")
    else:
        pipe = load_inpaint(model_dir, "cpu", "float32")
    Inpainter(pipe, plan).paint(compose(LAYOUT, CUTOUTS, size, 0), PROMPT,
                                InpaintSettings(steps=ITEM_STEPS), 11)
    # Much of the RSS is file pages of memory-mapped weights (safetensors, OpenVINO's .bin):
    # the kernel can drop those; anonymous memory it cannot.
    return {"peak": _peak_rss_mib(), "anon": _peak_rss_mib("RssAnon")}


# --------------------------------------------------------------------------- inference


def _interleaved(cases: dict[str, Any], rounds: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Each case once per round, in turn; median seconds of the warm rounds, last outputs."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    outputs: dict[str, Any] = {}
    for _round in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {n: statistics.median(t[1:]) for n, t in times.items()}, outputs


def measure_inference(model_dir: str, ov_dir: str, size: int, precision: str) -> dict:
    """Child: UNet step and VAE decode (and, for bf16, one dataset item) per backend,
    interleaved with torch float32 as the app ran before (NCHW, no autocast). precision
    "bf16": torch bf16 as a build runs it (channels-last), torch bf16 without channels-last,
    OpenVINO bf16. precision "f32": OpenVINO f32 (for CPUs without bf16 units)."""
    _setup_child()
    import torch
    from test_compose import CUTOUTS, LAYOUT

    from engine.dataset.compose import compose
    from engine.dataset.inpaint import Inpainter, InpaintSettings
    from engine.dataset.openvino_models import compiled_parts, openvino_inpaint_pipeline
    from engine.dataset.openvino_prepare import _DecoderGraph, _UNetGraph, example_inputs
    from engine.device import CpuFacts, apply_memory_savers, inference_autocast, plan_device
    from engine.models.loaders import load_inpaint

    fp32 = plan_device("cpu", precision="float32")
    bf16 = plan_device("cpu", cpu=CpuFacts("x86_64", ("avx512_bf16",)))
    pipe = load_inpaint(model_dir, "cpu", "float32")
    inputs = example_inputs(pipe, size, seed=3)
    parts = compiled_parts(Path(ov_dir), precision, ("unet", "vae_decoder"))
    graphs = {"fp32": {"unet": _UNetGraph(pipe.unet), "vae_decoder": _DecoderGraph(pipe.vae)}}
    if precision == "bf16":  # a second pipeline, laid out as a bf16 build has it
        fast = apply_memory_savers(load_inpaint(model_dir, "cpu", "float32"), bf16)
        graphs["bf16"] = {"unet": _UNetGraph(fast.unet), "vae_decoder": _DecoderGraph(fast.vae)}

    def torch_case(part: str, plan: Any, layout: str) -> Any:
        def run() -> Any:
            with torch.no_grad(), inference_autocast(plan):
                return graphs[layout][part](*inputs[part]).float()
        return run

    result: dict[str, Any] = {}
    for part in ("unet", "vae_decoder"):
        cases = {"torch fp32": torch_case(part, fp32, "fp32")}
        if precision == "bf16":
            cases["torch bf16, NCHW"] = torch_case(part, bf16, "fp32")
            cases["torch bf16"] = torch_case(part, bf16, "bf16")
        cases[f"OpenVINO {precision}"] = lambda part=part: parts[part](*inputs[part])
        seconds, outs = _interleaved(cases, ROUNDS)
        ref = outs["torch fp32"]
        result[part] = {n: {"seconds": seconds[n], "rel_l2": _rel_l2(outs[n], ref),
                            "mad": _mad(outs[n].numpy(), ref.numpy())} for n in cases}
    parts.clear()  # the compiled models' memory, before the items
    if precision != "bf16":
        result["rss_peak"] = _peak_rss_mib()
        return result
    # Text encoder: what the OpenVINO path leaves in torch (one pass per item, batch 2).
    ids = pipe.tokenizer([PROMPT, ""], padding="max_length", max_length=77,
                         return_tensors="pt").input_ids
    with torch.no_grad(), inference_autocast(bf16):
        pipe.text_encoder(ids)
        start = time.perf_counter()
        pipe.text_encoder(ids)
        result["text_encoder_bf16_seconds"] = time.perf_counter() - start
    # One dataset item: our Inpainter (mask prep, pipeline, paste-back), same seed each.
    composition = compose(LAYOUT, CUTOUTS, size, 0)
    settings = InpaintSettings(steps=ITEM_STEPS)
    ov_pipe = openvino_inpaint_pipeline(Path(ov_dir), Path(model_dir), "bf16")
    # Separate pipelines: the bf16 Inpainter lays its models out channels-last.
    inpainters = {"torch fp32": Inpainter(pipe, fp32), "torch bf16": Inpainter(fast, bf16),
                  "OpenVINO bf16": Inpainter(ov_pipe, bf16)}
    cases = {n: (lambda i=i: i.paint(composition, PROMPT, settings, 11).painted)
             for n, i in inpainters.items()}
    seconds, outs = _interleaved(cases, ITEM_ROUNDS)
    result["item"] = {n: {"seconds": seconds[n], "mad": _mad(outs[n], outs["torch fp32"])}
                      for n in cases}
    result["rss_peak"] = _peak_rss_mib()
    return result


def _inference_rows(prep: dict, inf: dict, inf_f32: dict, memory: dict[str, dict],
                    size: int) -> list[dict]:
    """The table; OpenVINO f32's seconds are scaled to the bf16 child's fp32 baseline by the
    ratio measured in its own child (the two ran minutes apart)."""
    got = prep["result"]
    rows = [
        {"metric": "OpenVINO conversion (UNet + VAE encoder + decoder), s",
         "value": got["convert_seconds"], "unit": "s",
         "note": "torch.export at 128 px, dynamic shapes, fp32 IR"},
        {"metric": "prepare-openvino job (load, convert, verify, calibrate), s",
         "value": prep["job_seconds"], "unit": "s",
         "note": f"verified: UNet {got['unet_difference']:.2%}, decoder "
                 f"{got['decoder_difference']:.2%}; calibration: {got['openvino_item_seconds']:.0f}"
                 f" s vs torch {got['torch_item_seconds']:.0f} s per item, used={got['used']}"},
        {"metric": "prepare-openvino job: peak RSS of its process", "value": prep["peak"],
         "unit": "MiB", "note": "the torch pipeline loaded + the conversion"},
    ]
    rows += [{"metric": f"one {size} px dataset item on {name}: peak RSS", "value": got["peak"],
              "unit": "MiB", "note": f"its own process, as a build runs it; anonymous memory "
                                     f"after the item {got['anon']:.0f} MiB (the rest: "
                                     "memory-mapped weight files)"}
             for name, got in memory.items()]
    targets = {("unet", "torch bf16"): ">= 1.5x", ("vae_decoder", "torch bf16"): ">= 1.8x",
               ("item", "torch bf16"): ">= 1.4x", ("item", "OpenVINO bf16"): ">= 1.8x"}
    labels = {"unet": f"UNet step {size} px batch 2", "vae_decoder": f"VAE decode {size} px",
              "item": f"dataset item {size} px, {ITEM_STEPS} steps"}
    for part in ("unet", "vae_decoder", "item"):
        base = inf[part]["torch fp32"]["seconds"]
        figures = dict(inf[part])
        if part in inf_f32:  # measured in its own process, against its own fp32 baseline
            own = inf_f32[part]["torch fp32"]["seconds"]
            figures["OpenVINO f32"] = {**inf_f32[part]["OpenVINO f32"], "seconds": base * (
                inf_f32[part]["OpenVINO f32"]["seconds"] / own)}
        for name, fig in figures.items():
            agree = "; ".join(([f"rel L2 {fig['rel_l2']:.2%}"] if part != "item" else [])
                              + ([f"mean |Δpixel| {fig['mad']:.2f}"] if part != "unet" else []))
            rows.append({"metric": f"{labels[part]}: {name}, s", "value": fig["seconds"],
                         "unit": "s", "target": targets.get((part, name), ""),
                         "note": f"{base / fig['seconds']:.2f}x vs fp32; {agree}"})
    rows.append({"metric": "text encoder pass (batch 2), torch bf16, s",
                 "value": inf["text_encoder_bf16_seconds"], "unit": "s",
                 "note": "stays in torch on the OpenVINO path"})
    rows.append({"metric": "inference process peak RSS", "value": inf["rss_peak"],
                 "unit": "MiB", "note": "two torch pipelines + OpenVINO bf16"})
    return rows


@benchmark("cpu-precision")
def cpu_precision() -> list[dict]:
    _setup_child()
    from sd15_random import build_sd15_inpaint_random

    work = Path(tempfile.mkdtemp(prefix="bench-cpu-precision-"))
    try:
        model = build_sd15_inpaint_random(work / "sd15-inpaint")
        prep = _in_child(measure_prepare, str(model), str(work / "data"))
        ov_dir = prep["result"]["folder"]
        memory = {"torch bf16": _in_child(measure_item_memory, str(model), ov_dir, "torch",
                                          512),
                  "OpenVINO bf16": _in_child(measure_item_memory, str(model), ov_dir,
                                             "openvino", 512)}
        inf = _in_child(measure_inference, str(model), ov_dir, 512, "bf16")
        inf_f32 = _in_child(measure_inference, str(model), ov_dir, 512, "f32")
        return _inference_rows(prep, inf, inf_f32, memory, 512)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- training


def _random_images(count: int, side: int, seed: int) -> list[Any]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray((rng.random((side, side, 3)) * 255).astype("uint8"))
            for _ in range(count)]


def train_agreement(pipe_source: str, side: int, steps: int, learning_rate: float,
                    export_to: str | None) -> dict:
    """Child: two trajectories (fp32, bf16 autocast) from one start, steps interleaved."""
    _setup_child()
    import copy

    import torch

    from engine.train.config import TrainConfig
    from engine.train.custom_diffusion import CustomDiffusionModel
    from engine.train.data import TrainingData, encode_latent_stats
    from engine.train.precision import Precision

    if pipe_source == "sd15":
        from sd15_text2image import build_sd15_pipeline

        pipe = build_sd15_pipeline()
    else:
        from engine.models.loaders import load_text_to_image

        pipe = load_text_to_image(pipe_source, "cpu")
    cpu = torch.device("cpu")
    precisions = {"fp32": Precision(cpu, torch.float32, None),
                  "bf16": Precision(cpu, torch.float32, torch.bfloat16)}
    cfg = TrainConfig(batch_size=2, resolution=side, learning_rate=learning_rate)
    model = CustomDiffusionModel(pipe, ["<mochi>", "<cup>"], ["cat", "mug"],
                                 precisions["fp32"], cfg)
    mean, std = encode_latent_stats(model.vae, _random_images(4, side, 1), "cpu", torch.float32)
    ids = model.tokenize(["a photo of <mochi> cat and <cup> mug on a table"] * 4)
    data = TrainingData(mean, std, ids, None, 2, 1, 0, True, None)
    start = model.trainable_state()
    states = {name: (start, None) for name in precisions}
    losses: dict[str, list[float]] = {name: [] for name in precisions}
    times: dict[str, list[float]] = {name: [] for name in precisions}
    for step in range(steps):
        for name, precision in precisions.items():
            trainable, optimiser = states[name]
            model.load_trainable_state(trainable)
            if optimiser is not None:
                model.optimiser.load_state(optimiser)
            else:
                model.optimiser.optimizer.state.clear()
            model.precision = precision
            t0 = time.perf_counter()
            losses[name].append(model.train_step(step, data)["loss"])
            times[name].append(time.perf_counter() - t0)
            states[name] = (model.trainable_state(), copy.deepcopy(model.optimiser.state_dict()))
    out = {"losses": losses, "times": times, "rss_peak": _peak_rss_mib()}
    deltas = {n: torch.cat([(states[n][0][k] - start[k]).flatten() for k in start])
              for n in precisions}
    out["update_cosine"] = float(torch.nn.functional.cosine_similarity(
        deltas["fp32"], deltas["bf16"], dim=0))
    if export_to:
        out["export"] = _export_matches(model, states["bf16"][0], pipe_source, export_to)
    return out


def _export_matches(model: Any, trained: dict, pipe_source: str, out: str) -> dict:
    """Export the bf16-trained state, load it into two fresh pipelines: every tensor equal to
    the trained one and between the two loads."""
    import torch

    from engine.models.loaders import load_text_to_image
    from engine.train.export import apply_concepts, export_concepts

    model.load_trainable_state(trained)
    export_concepts(model, Path(out), {"run_id": 0})
    loaded = []
    for _ in range(2):
        pipe = load_text_to_image(pipe_source, "cpu")
        tokens = apply_concepts(pipe, Path(out))
        kv = {name: pipe.unet.get_submodule(name).weight.detach().clone()
              for name in model.kv_layers}
        ids = pipe.tokenizer.convert_tokens_to_ids(tokens)
        rows = pipe.text_encoder.get_input_embeddings().weight[ids].detach().clone()
        loaded.append((kv, rows))
    (kv_a, rows_a), (kv_b, rows_b) = loaded
    same_as_trained = all(torch.equal(kv_a[n], trained[f"{n}.weight"]) for n in kv_a)
    reload_equal = all(torch.equal(kv_a[n], kv_b[n]) for n in kv_a) and torch.equal(rows_a,
                                                                                     rows_b)
    rows_trained = torch.equal(rows_a, trained["token_embeddings"])
    return {"kv_equal_trained": same_as_trained, "reload_equal": reload_equal,
            "rows_equal_trained": rows_trained,
            "finite": all(torch.isfinite(t).all() for t in kv_a.values())}


def _band(losses: dict[str, list[float]]) -> dict[str, float]:
    a, b = losses["fp32"], losses["bf16"]
    per_step = [abs(y - x) / abs(x) for x, y in zip(a, b, strict=True)]
    return {"max_step": max(per_step), "median_step": statistics.median(per_step),
            "mean_loss": abs(statistics.fmean(b) - statistics.fmean(a)) / statistics.fmean(a)}


@benchmark("cpu-precision-train")
def cpu_precision_train() -> list[dict]:
    _setup_child()
    from engine.models.tiny import ensure_tiny_models

    work = Path(tempfile.mkdtemp(prefix="bench-cpu-train-"))
    rows: list[dict] = []
    try:
        base = ensure_tiny_models(roles=["base"])["base"]
        runs = {"tiny 64 px, 200 steps, lr 1e-3": _in_child(
                    train_agreement, str(base), 64, 200, 1e-3, str(work / "export")),
                "SD 1.5 512 px, 5 steps, lr 1e-5": _in_child(
                    train_agreement, "sd15", 512, 6, 1e-5, None)}
        for label, got in runs.items():
            if label.startswith("SD"):  # the first step of each is a warm-up: not counted
                got["losses"] = {k: v[1:] for k, v in got["losses"].items()}
                got["times"] = {k: v[1:] for k, v in got["times"].items()}
            band = _band(got["losses"])
            fp32_s = statistics.median(got["times"]["fp32"])
            bf16_s = statistics.median(got["times"]["bf16"])
            inside = band["max_step"] <= STEP_BAND and band["mean_loss"] <= MEAN_BAND
            rows += [
                {"metric": f"{label}: step, fp32, s", "value": fp32_s, "unit": "s"},
                {"metric": f"{label}: step, bf16 autocast, s", "value": bf16_s, "unit": "s",
                 "target": ">= 1.3x", "note": f"{fp32_s / bf16_s:.2f}x vs fp32"},
                {"metric": f"{label}: loss, max per-step difference", "value": band["max_step"],
                 "unit": "rel", "target": f"<= {STEP_BAND}",
                 "note": f"median {band['median_step']:.4f}; in band: {inside}"},
                {"metric": f"{label}: mean loss difference", "value": band["mean_loss"],
                 "unit": "rel", "target": f"<= {MEAN_BAND}",
                 "note": f"fp32 mean {statistics.fmean(got['losses']['fp32']):.4f}"},
                {"metric": f"{label}: cosine of the two runs' weight updates",
                 "value": got["update_cosine"], "unit": ""},
                {"metric": f"{label}: peak RSS", "value": got["rss_peak"], "unit": "MiB"},
            ]
            if "export" in got:
                ok = all(got["export"].values())
                rows.append({"metric": f"{label}: bf16 export loads and matches its re-load",
                             "value": int(ok), "unit": "bool", "target": "1",
                             "note": ", ".join(f"{k}={v}" for k, v in got["export"].items())})
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)
