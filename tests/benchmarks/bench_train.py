"""Training speed: our Custom Diffusion step vs a straightforward reference loop.

Same model, same batch, same trainable parameters and optimiser. The reference does what the
diffusers example script does every step: turns the batch's pixels into latents with the VAE
and tokenises and encodes every prompt (the class prompts too). Ours draws the latent from
the cached VAE statistics and reuses the class prompts' cached text states. The reference
is given its pixels ready in memory (the example decodes and transforms files every step),
so the comparison is, if anything, in its favour.

Two sizes: the tiny profile (64 px), and SD 1.5's full architecture (random weights built
from its published configs, 512 px, a step or two each: minutes on a CPU). Peak RSS is the
process's high-water mark over each phase (reset through /proc/self/clear_refs where allowed).
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import time
from typing import Any

from memory import peak_rss_mb, reset_peak_rss
from run import REPO, benchmark

sys.path.insert(0, str(REPO / "tests"))
from sd15_text2image import build_sd15_pipeline

PROMPT = "<composition> a photo of <mochi> cat and <cup> mug, <mochi> cat, <cup> mug. " \
         "background: a wooden table in a sunlit kitchen"


def _images(count: int, side: int, seed: int) -> list[Any]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray((rng.random((side, side, 3)) * 255).astype("uint8"))
            for _ in range(count)]


def make_items(model: Any, count: int, side: int) -> tuple[Any, Any, Any]:
    """Cached latent statistics and prompt ids of `count` random images (what ours uses)."""
    from engine.train.data import encode_latent_stats

    mean, std = encode_latent_stats(model.vae, _images(count, side, 1), "cpu",
                                    model.precision.weight_dtype)
    return mean, std, model.tokenize([PROMPT] * count)




def reference_step(model: Any, pixels: list[Any], prompts: list[str], class_pixels: list[Any],
                   class_prompts: list[str], generator: Any,
                   after_backward: Any = None) -> float:
    """One step the straightforward way: VAE, tokenizer and text encoder on every batch."""
    import torch

    batch = torch.stack([p if torch.rand(1, generator=generator) < 0.5 else p.flip(-1)
                         for p in pixels + class_pixels])
    with torch.no_grad():
        dist = model.vae.encode(batch).latent_dist
        latents = (dist.mean + dist.std * torch.randn(dist.mean.shape, generator=generator)) \
            * model.vae.config.scaling_factor
    noise = torch.randn(latents.shape, generator=generator)
    timesteps = torch.randint(0, 1000, (latents.shape[0],), generator=generator)
    noisy = model.noise_scheduler.add_noise(latents, noise, timesteps)
    ids = model.tokenize(prompts + class_prompts)
    states = model.text_encoder(ids)[0]
    pred = model.unet(noisy, timesteps, states).sample
    n = len(pixels)
    loss = torch.nn.functional.mse_loss(pred[:n], noise[:n])
    if class_pixels:
        loss = loss + torch.nn.functional.mse_loss(pred[n:], noise[n:])
    loss.backward()
    if after_backward is not None:
        after_backward()
    torch.nn.utils.clip_grad_norm_(list(model.trainable_parameters()), 1.0)
    model.optimiser.optimizer.step()
    model.optimiser.optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def _example_style(model: Any, images: list[Any], class_images: list[Any], batch: int,
                   prior: bool, data_order: Any) -> Any:
    """The reference plus what the diffusers example also does every step: decode and
    convert each image file, and train the whole embedding matrix (AdamW over every row,
    the grads of all but the new rows zeroed after backward)."""
    import io

    import torch
    from PIL import Image

    from engine.train.data import to_pixels
    from engine.train.prompts import class_prompt

    def png(image: Any) -> bytes:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()

    files, class_files = [png(i) for i in images], [png(i) for i in class_images]
    matrix = model.embedding.base.weight
    matrix_optimizer = torch.optim.AdamW([matrix], lr=1e-5, weight_decay=1e-2)
    keep = torch.zeros(matrix.shape[0], dtype=torch.bool)  # no new row lives in the matrix here

    def zero_other_rows() -> None:
        matrix.grad[~keep] = matrix.grad[~keep].fill_(0)

    def step_fn(step: int) -> None:
        gen = torch.Generator().manual_seed(step)
        rows = data_order.indices(step * batch, batch)

        def load(blobs: list[bytes]) -> list[Any]:
            return list(to_pixels([Image.open(io.BytesIO(blobs[i])).convert("RGB")
                                   for i in rows]))

        matrix.requires_grad_(True)
        try:
            reference_step(model, load(files), [PROMPT] * batch,
                           load(class_files) if prior else [],
                           [class_prompt("cat")] * batch if prior else [], gen,
                           zero_other_rows)
            matrix_optimizer.step()
            matrix_optimizer.zero_grad(set_to_none=True)
        finally:
            matrix.requires_grad_(False)

    return step_fn


def _compare(label: str, pipe: Any, side: int, items: int, batch: int, prior: bool,
             steps: int, layouts_rounds: int = 0, example_style: bool = False) -> list[dict]:
    import torch

    from engine.train.config import TrainConfig
    from engine.train.custom_diffusion import CustomDiffusionModel
    from engine.train.data import PriorData, TrainingData, encode_latent_stats
    from engine.train.precision import plan_precision
    from engine.train.prompts import class_prompt

    cfg = TrainConfig(batch_size=batch, resolution=side)
    model = CustomDiffusionModel(pipe, ["<mochi>", "<cup>", "<composition>"],
                                 ["cat", "mug", "photo"], plan_precision("cpu", "auto"), cfg)
    reset_peak_rss()
    t0 = time.perf_counter()
    mean, std, ids = make_items(model, items, side)
    prior_data = None
    class_images = _images(items, side, 2) if prior else []
    if prior:
        c_mean, c_std = encode_latent_stats(model.vae, class_images, "cpu", torch.float32)
        with torch.no_grad():
            states = model.encode_text(model.tokenize([class_prompt("cat")]))
        prior_data = PriorData(c_mean, c_std, torch.zeros(items, dtype=torch.long), states)
    data = TrainingData(mean, std, ids, None, batch, 1, 0, True, prior_data)
    cache_seconds = time.perf_counter() - t0

    def ours(step: int) -> None:
        model.train_step(step, data)

    from engine.train.data import DataOrder, to_pixels

    data_order = DataOrder(items, 0)
    pixels = list(to_pixels(_images(items, side, 1)))
    class_pixels = list(to_pixels(class_images)) if prior else []

    def reference(step: int) -> None:
        gen = torch.Generator().manual_seed(step)
        rows = data_order.indices(step * batch, batch)
        reference_step(model, [pixels[i] for i in rows], [PROMPT] * batch,
                       [class_pixels[i] for i in rows] if prior else [],
                       [class_prompt("cat")] * batch if prior else [], gen)

    variants = {"reference": reference, "ours": ours}
    if example_style:
        variants["example-style reference"] = _example_style(
            model, _images(items, side, 1), class_images, batch, prior, data_order)
    peaks = {}
    for name, fn in variants.items():
        reset_peak_rss()
        fn(0)  # warm-up: first-call allocations and kernel selection; its peak is the step's
        peaks[name] = peak_rss_mb()
    # Interleaved, so both see the same load from whatever else runs on the machine.
    times: dict[str, list[float]] = {name: [] for name in variants}
    for step in range(1, steps + 1):
        order = list(variants) if step % 2 else list(reversed(variants))
        for name in order:
            t = time.perf_counter()
            variants[name](step)
            times[name].append(time.perf_counter() - t)
    rates = {name: 1.0 / statistics.median(times[name]) for name in variants}
    out = [{"metric": f"{label}: {name} steps/s", "value": rates[name], "unit": "1/s",
            "note": f"median of {steps}, interleaved; peak RSS in a step {peaks[name]:.0f} MB"}
           for name in variants]
    out.append({"metric": f"{label}: speed-up ours / reference",
                "value": rates["ours"] / rates["reference"], "unit": "x", "target": ">= 1.3",
                "note": f"batch {batch}{' + prior' if prior else ''}, {side} px, caches built "
                        f"once in {cache_seconds:.1f} s for {items} items"})
    if example_style:
        out.append({"metric": f"{label}: speed-up ours / example-style reference",
                    "value": rates["ours"] / rates["example-style reference"], "unit": "x",
                    "note": "the reference + per-step file decoding + whole-matrix embedding "
                            "training, as the diffusers example script does"})
    if layouts_rounds:
        out += _layouts(label, model, data, layouts_rounds)
    return out


def _layouts(label: str, model: Any, data: Any, rounds: int) -> list[dict]:
    """Our step with channels-last and with the classic (non-SDPA) attention, interleaved
    with the default (NCHW, SDPA): do they help on this device?"""
    import torch
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    base_cfg = model.config

    def setup(memory_format: Any, processor: Any, channels_last: str) -> None:
        model.unet.to(memory_format=memory_format)
        model.unet.set_attn_processor(processor)
        model.config = base_cfg.with_changes(channels_last=channels_last)

    variants = {
        "NCHW + SDPA (default on CPU)": (torch.contiguous_format, AttnProcessor2_0(), "off"),
        "channels-last + SDPA": (torch.channels_last, AttnProcessor2_0(), "on"),
        "NCHW + classic attention": (torch.contiguous_format, AttnProcessor(), "off"),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    step = 1000
    for round_ in range(rounds):
        names = list(variants) if round_ % 2 else list(reversed(variants))
        for name in names:
            setup(*variants[name])
            model.train_step(step, data)  # settle after the switch
            t = time.perf_counter()
            model.train_step(step + 1, data)
            times[name].append(time.perf_counter() - t)
            step += 2
    setup(*variants["NCHW + SDPA (default on CPU)"])
    default = statistics.median(times["NCHW + SDPA (default on CPU)"])
    return [{"metric": f"{label}: ours, {name}", "unit": "1/s",
             "value": 1.0 / statistics.median(t),
             "note": f"{default / statistics.median(t):.2f}x the default; median of {rounds}, "
                     "interleaved"} for name, t in times.items()]


@benchmark("train")
def train_speed() -> list[dict]:
    from engine.models.loaders import load_text_to_image
    from engine.models.tiny import ensure_tiny_models

    tiny = ensure_tiny_models(roles=["base"])["base"]
    rows = _compare("tiny 64 px", load_text_to_image(tiny), 64, items=8, batch=2, prior=True,
                    steps=40, layouts_rounds=20, example_style=True)
    if os.environ.get("MYCANVAS_BENCH_SKIP_FULL"):
        return rows
    pipe = build_sd15_pipeline()
    rows += _compare("SD 1.5 arch 512 px", pipe, 512, items=2, batch=1, prior=False, steps=2,
                     layouts_rounds=2)
    rows.append({"metric": "peak RSS of the whole benchmark", "unit": "MB",
                 "value": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    return rows
