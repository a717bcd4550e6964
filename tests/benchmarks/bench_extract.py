"""EM extraction's costs: an M-step against a plain Custom Diffusion step on the same model,
the E-step, and what the attention capture costs while it is not recording.

* EM step vs Custom Diffusion step: the same UNet and VAE (shared), the same trainable
  parameters (k/v of every cross-attention layer and the token rows: the EM step in phase
  two), batch 1, the same photo. The EM step adds the prompt of a random token subset, the
  classic attention path with recording on the five 16×16 layers (the tiny model's three
  4×4), the masked loss and the attention loss. Target: at most 1.3× the plain step.
* E-step: the attention pass (noise levels × photo and mirror, one batch) and the mask
  post-processing with the dense CRF, at the model's resolution.
* Capture off: a UNet forward pass with the recorders installed but not recording, against
  the original processors. Target: at most 1.02×.

Two sizes: the tiny profile (64 px), and SD 1.5's full architecture with random weights
(512 px, a few steps: minutes on a CPU; run it under `flock /tmp/mycanvas-heavy.lock`).
Timings are medians of interleaved runs, so both sides see the same machine load.
"""

from __future__ import annotations

import copy
import os
import resource
import statistics
import sys
import time
from typing import Any

from run import REPO, benchmark

sys.path.insert(0, str(REPO / "tests"))
from sd15_text2image import build_sd15_pipeline

PROMPT = "a photo of <mochi> cat and <rex> dog"


def _photo(side: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(3)
    picture = rng.integers(60, 200, (side, side, 3), dtype=np.uint8)
    picture[side // 4: 3 * side // 4, side // 8: side // 2] = (200, 120, 40)
    picture[side // 3: 5 * side // 6, side // 2: 7 * side // 8] = (30, 60, 190)
    masks = np.zeros((2, side, side), bool)
    masks[0, side // 4: 3 * side // 4, side // 8: side // 2] = True
    masks[1, side // 3: 5 * side // 6, side // 2: 7 * side // 8] = True
    return picture, masks


def _models(pipe: Any, side: int) -> tuple[Any, Any]:
    """A Custom Diffusion model and an extraction model on one UNet and VAE; each has its
    own text encoder and tokenizer (their new tokens must not meet)."""
    import diffusers
    from PIL import Image

    from engine.extract.config import ExtractConfig
    from engine.extract.model import ExtractionModel
    from engine.train import ConceptRef, plan_precision
    from engine.train.config import TrainConfig
    from engine.train.custom_diffusion import CustomDiffusionModel
    from engine.train.data import TrainingData, encode_latent_stats

    twin = diffusers.StableDiffusionPipeline(
        vae=pipe.vae, unet=pipe.unet, text_encoder=copy.deepcopy(pipe.text_encoder),
        tokenizer=copy.deepcopy(pipe.tokenizer), scheduler=pipe.scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    precision = plan_precision("cpu", "auto")
    cd = CustomDiffusionModel(pipe, ["<mochi>", "<rex>"], ["cat", "dog"], precision,
                              TrainConfig(batch_size=1, resolution=side))
    em = ExtractionModel(twin, [ConceptRef("<mochi>", "cat"), ConceptRef("<rex>", "dog")],
                         precision, ExtractConfig(steps=10_000, resolution=side,
                                                  phase_one_steps=0))
    for hook in em._hooks:  # the shared k/v layers keep one start-token hook, not two
        hook.remove()
    picture, _ = _photo(side)
    em.encode_photo(picture)
    mean, std = encode_latent_stats(cd.vae, [Image.fromarray(picture)], "cpu", precision
                                    .weight_dtype)
    cd.data = TrainingData(mean, std, cd.tokenize([PROMPT]), None, 1, 1, 0, True)
    return cd, em


def _interleaved(variants: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    """Seconds of each variant per round, run in alternating order after one warm-up each;
    a variant returns the seconds of what it measures (its set-up is not counted)."""
    for fn in variants.values():
        fn(0)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(1, rounds + 1):
        for name in (list(variants) if r % 2 else list(reversed(variants))):
            times[name].append(variants[name](r))
    return times


def _ratio(times: dict[str, list[float]], over: str, under: str) -> float:
    """The median of the per-round ratios: each pair ran back to back, under the same load
    from whatever else runs on the machine."""
    return statistics.median(a / b for a, b in zip(times[over], times[under], strict=True))


def _timed(fn: Any, *args: Any) -> float:
    began = time.perf_counter()
    fn(*args)
    return time.perf_counter() - began


def _measure(label: str, pipe: Any, side: int, step_rounds: int, forward_rounds: int,
             estep_rounds: int) -> list[dict]:
    import numpy as np
    import torch

    from engine.extract.attention import attention_layers, capture_attention
    from engine.extract.estep import MaskSettings, estimate_masks

    cd, em = _models(pipe, side)
    _, masks = _photo(side)
    rows = []
    _layers, level = attention_layers(em.unet)
    em.set_masks(masks, em.latent_side >> level)

    def em_step(s: int) -> float:
        # The recorders are installed around each EM step and out again, so the plain step
        # runs with the original processors; installing (set_attn_processor, ~ms) is not
        # counted: a run installs them once.
        with capture_attention(em.unet) as capture:
            return _timed(em.train_step, s, capture)

    step = {"Custom Diffusion step": lambda s: _timed(cd.train_step, s, cd.data),
            "EM step (phase two)": em_step}
    secs = _interleaved(step, step_rounds)
    with capture_attention(em.unet) as capture:
        rows += [{"metric": f"{label}: {name}", "value": 1.0 / statistics.median(t),
                  "unit": "1/s", "note": f"median of {step_rounds}, interleaved"}
                 for name, t in secs.items()]
        rows.append({"metric": f"{label}: EM step / Custom Diffusion step",
                     "value": _ratio(secs, "EM step (phase two)", "Custom Diffusion step"),
                     "unit": "x", "target": "<= 1.3",
                     "note": f"{len(capture.layers)} layers recorded at "
                             f"{em.latent_side >> capture.level}×"
                             f"{em.latent_side >> capture.level}, batch 1, {side} px"})
        prompt = em.prompt([0, 1])
        picture, _ = _photo(side)
        attention: dict[str, float] = {"attention": 0.0, "masks": 0.0}
        for r in range(estep_rounds):
            t = time.perf_counter()
            maps, _ = em.photo_attention(prompt, capture, torch.Generator().manual_seed(r),
                                         masks)
            t1 = time.perf_counter()
            estimate_masks(maps, picture, np.ones((side, side), bool), MaskSettings(),
                           previous=masks)
            attention["attention"] += (t1 - t) / estep_rounds
            attention["masks"] += (time.perf_counter() - t1) / estep_rounds
        batch = len(em.cfg.estep_timesteps) * (2 if em.cfg.hflip else 1)
        rows.append({"metric": f"{label}: E-step", "unit": "s",
                     "value": attention["attention"] + attention["masks"],
                     "note": f"attention pass {attention['attention']:.2f} s (batch {batch}) "
                             f"+ masks and CRF {attention['masks']:.2f} s; mean of "
                             f"{estep_rounds}"})
    latents = torch.randn(1, 4, em.latent_side, em.latent_side,
                          generator=torch.Generator().manual_seed(0))
    states = torch.randn(1, 77, em.text_encoder.config.hidden_size,
                         generator=torch.Generator().manual_seed(1))
    t = torch.tensor([500])

    def forward(_r: int) -> None:
        with torch.no_grad():
            em.unet(latents, t, states)

    def forward_captured(r: int) -> float:
        with capture_attention(em.unet):
            return _timed(forward, r)

    off = _interleaved({"original processors": lambda r: _timed(forward, r),
                        "capture, not recording": forward_captured}, forward_rounds)
    plain, captured = (statistics.median(off[k]) * 1000 for k in
                       ("original processors", "capture, not recording"))
    rows.append({"metric": f"{label}: UNet forward, capture installed but off / original",
                 "value": _ratio(off, "capture, not recording", "original processors"),
                 "unit": "x", "target": "<= 1.02",
                 "note": f"{plain:.1f} ms vs {captured:.1f} ms (medians); median of "
                         f"{forward_rounds} interleaved pairs"})
    return rows


@benchmark("extract")
def extract_costs() -> list[dict]:
    from engine.models.loaders import load_text_to_image
    from engine.models.tiny import ensure_tiny_models

    tiny = ensure_tiny_models(roles=["base"])["base"]
    rows = _measure("tiny 64 px", load_text_to_image(tiny), 64, step_rounds=100,
                    forward_rounds=200, estep_rounds=10)
    if os.environ.get("MYCANVAS_BENCH_SKIP_FULL"):
        return rows
    rows += _measure("SD 1.5 arch 512 px", build_sd15_pipeline(), 512, step_rounds=3,
                     forward_rounds=6, estep_rounds=1)
    rows.append({"metric": "peak RSS of the whole benchmark", "unit": "MB",
                 "value": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    return rows
