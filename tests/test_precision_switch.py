"""The precision setting is obeyed by a warm worker: its models are cached under the precision
they compute in, so a change of the setting takes effect on the next job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from generate_project import PROMPT, train_run
from PIL import Image
from train_project import make_train_project

import engine.device as device_module
from engine.device import CpuFacts
from engine.settings import Settings, save_settings

BF16_CPU = CpuFacts("x86_64", ("avx512_bf16", "amx_bf16"))


def _pixels(folder: Path, rel: str) -> np.ndarray:
    with Image.open(folder / rel) as image:
        return np.asarray(image.convert("RGB"))


def test_auto_float32_auto_with_one_warm_cache_follows_the_setting(tmp_path, monkeypatch):
    """auto -> float32 -> auto, one warm model cache (the worker's state between jobs, run here
    in-process): each job's recipe names the precision it ran in, float32 paints other pixels
    than bf16, and auto again paints the first picture again. (bf16 "available" by injected
    CPU facts: autocast runs on any x86 CPU, just slowly. Not through a forked worker: a fork
    of the test process crashed natively on another CPU kind, which proves nothing here.)"""
    from engine.jobs import JobContext, JobFinished, JobSpec, run_job
    from engine.jobs.warm_cache import WarmCache
    from engine.project import Project

    folder = make_train_project(tmp_path / "project")
    run_id = train_run(folder, 0)
    monkeypatch.setattr(device_module, "cpu_facts", lambda: BF16_CPU)
    params = {"project": str(folder), "device": "cpu", "steps": 3, "prompt": PROMPT,
              "seed": 7, "run_id": run_id}
    models: WarmCache = WarmCache()
    cache: dict = {}
    ends = []
    for precision in ("auto", "float32", "auto"):
        save_settings(Settings(precision=precision))
        spec = JobSpec("generate", dict(params))
        ends.append(run_job(spec, JobContext(spec.job_id, lambda _e: None, cache=cache,
                                             models=models)))
    assert all(isinstance(e, JobFinished) for e in ends), [getattr(e, "detail", e) for e in ends]
    with Project.open(folder) as project:
        recipes = [project.generation(e.result.generation_ids[0]).settings for e in ends]
    assert [r["precision"] for r in recipes] == [
        "float32 weights, bfloat16 autocast", "float32", "float32 weights, bfloat16 autocast"]
    first, fp32, again = (_pixels(folder, e.result.image_files[0]) for e in ends)
    assert not np.array_equal(first, fp32)
    assert np.array_equal(first, again)


def test_the_warm_key_names_the_compute_precision_and_a_change_replaces_the_model():
    from engine.jobs.stage_setup import StageSetup
    from engine.jobs.warm_cache import WarmCache
    from engine.models.profiles import get_profile

    bf16 = device_module.plan_device("cpu", cpu=BF16_CPU)
    fp32 = device_module.plan_device("cpu", cpu=BF16_CPU, precision="float32")
    keys = {name: StageSetup(get_profile("tiny"), {}, Settings(), plan).model_key(
        "base", "generate:x", autocast=True) for name, plan in (("bf16", bf16), ("fp32", fp32))}
    assert keys["bf16"].compute == "bfloat16" and keys["fp32"].compute == ""
    assert keys["bf16"] != keys["fp32"]
    # a model that never autocasts (scoring, segmentation) keeps one key for both
    plain = [StageSetup(get_profile("tiny"), {}, Settings(), p).model_key("clip", "c")
             for p in (bf16, fp32)]
    assert plain[0] == plain[1]
    cache = WarmCache(budget=lambda _d, _h: None, measure=lambda _m: 1)
    cache.load(keys["bf16"], lambda: "bf16 model")
    cache.load(plain[0], lambda: "clip")
    assert cache.load(keys["fp32"], lambda: "fp32 model") == "fp32 model"
    assert cache.loaded_keys() == [plain[0], keys["fp32"]]  # the stale one is gone, CLIP stays
    assert cache.evicted == [keys["bf16"]]


@pytest.mark.parametrize(("kind", "facts", "channels_last", "attention_fp32"), [
    ("amx", ("avx512_bf16", "amx_bf16"), ("unet", "vae"), False),
    ("avx512-bf16", ("avx512_bf16",), ("vae",), True),
    ("avx2", (), (), False),
])
def test_channels_last_and_attention_follow_the_cpu_kind(kind, facts, channels_last,
                                                         attention_fp32):
    plan = device_module.plan_device("cpu", cpu=CpuFacts("x86_64", facts))
    assert (plan.cpu_kind, plan.channels_last, plan.attention_fp32) == (
        kind, channels_last, attention_fp32)
    forced = device_module.plan_device("cpu", cpu=CpuFacts("x86_64", facts),
                                       precision="float32")
    assert forced.channels_last == () and not forced.attention_fp32


def test_float_attention_is_diffusers_arithmetic_with_a_float32_product():
    """Equal to diffusers' default processor in float32 (self- and cross-attention, the VAE's
    4-D form with group norm and residual); under bf16 autocast its product stays float32,
    so it is nearer the float32 result than the default's bf16 product."""
    import torch
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    from engine.device import FloatAttention

    torch.manual_seed(0)
    selfish = Attention(query_dim=64, heads=4, dim_head=16).eval()
    cross = Attention(query_dim=64, cross_attention_dim=48, heads=4, dim_head=16).eval()
    vae_like = Attention(query_dim=64, heads=1, dim_head=64, norm_num_groups=8,
                         residual_connection=True, rescale_output_factor=2.0).eval()
    x, ctx, image = torch.randn(2, 40, 64), torch.randn(2, 7, 48), torch.randn(1, 64, 6, 6)
    cases = [(selfish, (x,), {}), (cross, (x,), {"encoder_hidden_states": ctx}),
             (vae_like, (image,), {})]
    with torch.no_grad():
        for module, args, kwargs in cases:
            module.set_processor(AttnProcessor2_0())
            want = module(*args, **kwargs)
            module.set_processor(FloatAttention())
            torch.testing.assert_close(module(*args, **kwargs), want, rtol=1e-5, atol=1e-6)
        seen = []
        hook = torch.nn.functional.scaled_dot_product_attention

        def spy(q, k, v, **kw):
            seen.append(q.dtype)
            return hook(q, k, v, **kw)

        torch.nn.functional.scaled_dot_product_attention = spy
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                cross.set_processor(FloatAttention())
                ours = cross(x, encoder_hidden_states=ctx)
                cross.set_processor(AttnProcessor2_0())
                default = cross(x, encoder_hidden_states=ctx)
        finally:
            torch.nn.functional.scaled_dot_product_attention = hook
        assert seen == [torch.float32, torch.bfloat16]
        cross.set_processor(AttnProcessor2_0())
        exact = cross(x, encoder_hidden_states=ctx)
        assert ours.dtype == default.dtype == torch.bfloat16
        assert (ours.float() - exact).abs().mean() <= (default.float() - exact).abs().mean()


def test_an_avx512_bf16_plan_installs_float_attention_and_channels_last_vae_only(tiny_models):
    import torch

    from engine.device import FloatAttention, apply_memory_savers
    from engine.models.loaders import load_text_to_image

    plan = device_module.plan_device("cpu", cpu=CpuFacts("x86_64", ("avx512_bf16",)))
    pipe = apply_memory_savers(load_text_to_image(tiny_models["base"]), plan)
    assert all(isinstance(p, FloatAttention) for p in pipe.unet.attn_processors.values())
    conv = next(m for m in pipe.vae.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    unet_conv = next(m for m in pipe.unet.modules() if isinstance(m, torch.nn.Conv2d))
    assert unet_conv.weight.is_contiguous()  # the UNet stays as it is on this kind
