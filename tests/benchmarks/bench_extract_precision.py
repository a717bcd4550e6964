"""EM extraction in float32 and under CPU bf16 autocast (float32 master weights), as the
fine-tuning core now plans it for extraction too (engine.train.fine_tuning).

    extract-precision    An M-step (phase two: tokens and k/v, attention recorded, batch 1)
                         and an E-step's attention pass (noise levels × photo and mirror,
                         one batch), each precision on its own copy of the tiny profile's
                         pipeline, interleaved in rounds so both see the same load; medians.
                         The bf16 plan comes the way a job gets it: `plan_device` with a CPU
                         whose facts say bf16 units (here injected), then `plan_precision`.
                         "Per EM iteration" = (steps / iterations) M-steps + one E-step
                         attention pass at the default schedule (400 steps, 4 iterations).

On a CPU without bf16 units (AVX2 only) torch still runs bf16 autocast, but emulated: the
figure is then the cost of the emulation, not what a CPU with AVX512-BF16 or AMX does
(engine/train/precision.py has the measured speed-up on such a CPU for training's step).
Optional full size: MYCANVAS_BENCH_EXTRACT_FULL=1 adds SD 1.5's architecture at 256 px
(random weights, about 12 GB; run it under `flock /tmp/mycanvas-heavy.lock`: with bf16
emulated on a shared 2-core AVX2 EPYC it did not finish in 30 minutes).
"""

from __future__ import annotations

import os
import statistics
import sys
from typing import Any

from bench_extract import _interleaved, _photo, _timed
from machine import where
from run import REPO, benchmark

sys.path.insert(0, str(REPO / "tests"))

BF16_CPU_FLAGS = ("avx512_bf16",)
STEPS, ITERATIONS = 400, 4  # ExtractConfig's defaults


def _model(pipe: Any, side: int, precision: Any) -> Any:
    from engine.extract.attention import attention_layers
    from engine.extract.config import ExtractConfig
    from engine.extract.model import ExtractionModel
    from engine.train import ConceptRef

    em = ExtractionModel(pipe, [ConceptRef("<mochi>", "cat"), ConceptRef("<rex>", "dog")],
                         precision, ExtractConfig(steps=10_000, resolution=side,
                                                  phase_one_steps=0))
    picture, masks = _photo(side)
    em.encode_photo(picture)
    _layers, level = attention_layers(em.unet)
    em.set_masks(masks, em.latent_side >> level)
    return em


def _measure(label: str, load: Any, side: int, rounds: int) -> list[dict]:
    import torch

    from engine.device import CpuFacts, cpu_facts, plan_device
    from engine.extract.attention import capture_attention
    from engine.train import plan_precision

    plans = {"float32": plan_device("cpu", cpu=CpuFacts("x86_64", ())),
             "bf16 autocast": plan_device("cpu", cpu=CpuFacts("x86_64", BF16_CPU_FLAGS))}
    models = {name: _model(load(), side, plan_precision("cpu", "auto", plan.autocast_dtype))
              for name, plan in plans.items()}
    assert models["bf16 autocast"].precision.autocast_dtype == torch.bfloat16
    assert models["float32"].precision.autocast_dtype is None

    def m_step(em: Any) -> Any:
        def run(s: int) -> float:
            with capture_attention(em.unet) as capture:
                return _timed(em.train_step, s, capture)
        return run

    def e_step(em: Any) -> Any:
        prompt = em.prompt([0, 1])

        def run(r: int) -> float:
            with capture_attention(em.unet) as capture:
                return _timed(em.photo_attention, prompt, capture,
                              torch.Generator().manual_seed(r))
        return run

    steps = _interleaved({name: m_step(em) for name, em in models.items()}, rounds)
    esteps = _interleaved({name: e_step(em) for name, em in models.items()},
                          max(2, rounds // 10))
    rows = []
    per_iteration = {}
    for name in models:
        m, e = statistics.median(steps[name]), statistics.median(esteps[name])
        per_iteration[name] = STEPS / ITERATIONS * m + e
        rows += [{"metric": f"{label}: M-step, {name}", "value": m, "unit": "s",
                  "note": f"median of {rounds}, interleaved"},
                 {"metric": f"{label}: E-step attention pass, {name}", "value": e,
                  "unit": "s", "note": f"median of {len(esteps[name])}, interleaved"},
                 {"metric": f"{label}: per EM iteration, {name}", "value": per_iteration[name],
                  "unit": "s", "note": f"{STEPS // ITERATIONS} M-steps + the E-step's pass"}]
    units = cpu_facts().bf16_units
    rows.append({"metric": f"{label}: per EM iteration, bf16 autocast / float32",
                 "value": per_iteration["bf16 autocast"] / per_iteration["float32"],
                 "unit": "x", "note": f"{where()}; " + (
                     f"bf16 units here ({'+'.join(units)})" if units else
                     "no bf16 units here: bf16 is emulated, this is its cost")})
    return rows


@benchmark("extract-precision")
def extract_precision() -> list[dict]:
    from engine.models.loaders import load_text_to_image
    from engine.models.tiny import ensure_tiny_models

    tiny = ensure_tiny_models(roles=["base"])["base"]
    rows = _measure("tiny 64 px", lambda: load_text_to_image(tiny), 64, rounds=60)
    if os.environ.get("MYCANVAS_BENCH_EXTRACT_FULL"):
        from sd15_text2image import build_sd15_pipeline

        rows += _measure("SD 1.5 arch 256 px", build_sd15_pipeline, 256, rounds=3)
    return rows
