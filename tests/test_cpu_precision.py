"""CPU precision: the policy (bf16 compute only on CPUs with bf16 units, the user's float32
setting wins), where the choice is shown, and every stage that exists today (dataset
inpainting; training's class images, previews and steps) running under the chosen precision
on the tiny profile, within the stated bounds of float32.

Bounds (tiny profile; tests/benchmarks/bench_cpu_precision.py measures the full size):
a UNet output within 3 % relative L2 of float32 (measured 1.1-1.3 %), an inpainted picture
within 3 grey levels mean absolute difference (measured 0.9-1.0), a preview within 3.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import engine.device as device_module
from engine.device import (
    CpuFacts,
    DevicePlan,
    facts_from_capabilities,
    facts_from_cpuinfo,
    inference_autocast,
    plan_device,
)
from engine.errors import InputError
from engine.settings import Settings, load_settings, save_settings, settings_path

BF16_CPU = CpuFacts("x86_64", ("avx512_bf16", "amx_bf16"))
PLAIN_CPU = CpuFacts("x86_64", ())
UNET_BOUND, PIXEL_BOUND = 0.03, 3.0


@pytest.fixture
def bf16_cpu(monkeypatch):
    """This processor has bf16 units, whatever the test machine has."""
    monkeypatch.setattr(device_module, "cpu_facts", lambda: BF16_CPU)


# --------------------------------------------------------------------------- the policy


@pytest.mark.parametrize(("caps", "arch", "units"), [
    ({"avx512_bf16": True, "amx_bf16": True, "avx512_f": True}, "x86_64",
     ("avx512_bf16", "amx_bf16")),
    ({"avx512_bf16": False, "amx_bf16": True}, "x86_64", ("amx_bf16",)),
    ({"avx512_f": True, "avx512_bw": True, "avx2": True}, "x86_64", ()),  # bf16 emulated
    ({"bf16": True, "sve": True}, "aarch64", ("bf16",)),
    ({"neon": True, "bf16": False}, "arm64", ()),
    ({"bf16": True}, "riscv64", ()),  # not a family we know: fp32
])
def test_bf16_units_are_read_from_the_capabilities(caps, arch, units):
    assert facts_from_capabilities(caps, arch).bf16_units == units


def test_cpuinfo_fallback_reads_flags_and_features():
    x86 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\nbogomips : 1\n"
    arm = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n"
    assert facts_from_cpuinfo(x86, "x86_64").bf16_units == ("avx512_bf16",)
    assert facts_from_cpuinfo(arm, "aarch64").bf16_units == ("bf16",)
    assert facts_from_cpuinfo("flags : avx2 fma\n", "x86_64").bf16_units == ()


def test_this_machine_is_read_through_torch():
    facts = device_module.cpu_facts()
    caps = torch.cpu.get_capabilities()
    assert facts.bf16_units == facts_from_capabilities(caps, caps["architecture"]).bf16_units


def test_the_policy_picks_bf16_compute_only_where_the_cpu_has_it():
    fast = plan_device("cpu", cpu=BF16_CPU)
    assert (fast.dtype, fast.autocast_dtype) == ("float32", "bfloat16")
    assert "float32 weights, bfloat16 compute on avx512_bf16+amx_bf16" in fast.describe()
    plain = plan_device("cpu", cpu=PLAIN_CPU)
    assert (plain.dtype, plain.autocast_dtype) == ("float32", None)
    assert "no bf16 units" in plain.describe()
    assert plan_device("cpu", cpu=BF16_CPU, lean=True).autocast_dtype == "bfloat16"


def test_the_users_float32_setting_wins():
    forced = plan_device("cpu", precision="float32", cpu=BF16_CPU)
    assert forced.autocast_dtype is None and "as the settings ask" in forced.describe()
    with pytest.raises(InputError, match="precision must be one of"):
        plan_device("cpu", precision="bf16")


def test_every_job_reads_the_setting(bf16_cpu):
    from engine.jobs.builtin import DeviceInfoParams, device_info_job
    from engine.jobs.declaration import StageParams
    from engine.jobs.stage_setup import resolve_stage

    class Ctx:
        def progress(self, *_args):
            pass

    params = StageParams(project="unused", profile="tiny", device="cpu")
    assert resolve_stage(params).device.autocast_dtype == "bfloat16"
    assert "bfloat16 compute" in device_info_job(Ctx(), DeviceInfoParams()).description
    save_settings(Settings(precision="float32"))
    assert resolve_stage(params).device.autocast_dtype is None
    assert "as the settings ask" in device_info_job(Ctx(), DeviceInfoParams()).description
    # The window may also ask for a precision explicitly.
    asked = device_info_job(Ctx(), DeviceInfoParams(precision="auto")).description
    assert "bfloat16 compute" in asked


def test_the_setting_is_validated_like_every_key(caplog):
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"precision": "bf16", "device": "cpu"}))
    loaded = load_settings()
    assert loaded.precision == "auto" and loaded.device == "cpu"
    assert "precision" in caplog.text
    with pytest.raises(InputError, match="precision"):
        save_settings(Settings(precision="half"))


def test_doctor_shows_the_choice(bf16_cpu, capsys):
    from engine.cli import main

    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["autocast_dtype"] == "bfloat16" and report["precision_setting"] == "auto"
    assert "bfloat16 compute" in report["memory_savers"]
    assert main(["doctor"]) == 0
    assert "device:   cpu (float32 weights, bfloat16 compute" in capsys.readouterr().out


def test_inference_autocast_follows_the_plan():
    bf16 = plan_device("cpu", cpu=BF16_CPU)
    with inference_autocast(bf16):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert torch.nn.Linear(4, 4)(torch.ones(1, 4)).dtype == torch.bfloat16
    for plan in (plan_device("cpu", cpu=PLAIN_CPU), None,
                 DevicePlan("cuda", "float16", None, False, False, False)):
        with inference_autocast(plan):
            assert not torch.is_autocast_enabled("cpu")


def test_a_bf16_cpu_plan_lays_the_unet_and_vae_out_channels_last(tiny_models):
    from engine.device import apply_memory_savers
    from engine.models.loaders import load_inpaint

    def layout_is_channels_last(pipe) -> bool:
        weight = pipe.unet.conv_in.weight
        return weight.is_contiguous(memory_format=torch.channels_last) and \
            not weight.is_contiguous()

    pipe = load_inpaint(tiny_models["inpaint"], "cpu")
    apply_memory_savers(pipe, plan_device("cpu", cpu=PLAIN_CPU))
    assert not layout_is_channels_last(pipe)
    apply_memory_savers(pipe, plan_device("cpu", cpu=BF16_CPU))
    assert layout_is_channels_last(pipe)
    assert pipe.vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)


# --------------------------------------------------------------------------- the stages


class AutocastSpy:
    """Records, for every UNet forward, whether CPU autocast (bf16) was on and grad too."""

    def __init__(self, monkeypatch):
        from diffusers import UNet2DConditionModel

        self.calls: list[tuple[bool, bool]] = []
        real = UNet2DConditionModel.forward

        def forward(unet, *args, **kwargs):
            on = torch.is_autocast_enabled("cpu") and \
                torch.get_autocast_dtype("cpu") == torch.bfloat16
            self.calls.append((on, torch.is_grad_enabled()))
            return real(unet, *args, **kwargs)

        monkeypatch.setattr(UNet2DConditionModel, "forward", forward)

    def take(self) -> list[tuple[bool, bool]]:
        calls, self.calls = self.calls, []
        return calls


def test_unet_agreement_bound(tiny_models):
    from engine.models.loaders import load_inpaint

    unet = load_inpaint(tiny_models["inpaint"], "cpu").unet
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(2, unet.config.in_channels, 16, 16, generator=gen)
    states = torch.randn(2, 77, unet.config.cross_attention_dim, generator=gen)
    with torch.inference_mode():
        want = unet(sample, 500, states).sample
        with inference_autocast(plan_device("cpu", cpu=BF16_CPU)):
            got = unet(sample, 500, states).sample
    difference = float((got.float() - want).norm() / want.norm())
    assert 1e-4 < difference <= UNET_BOUND  # bf16 really ran, and stayed close


def test_dataset_inpainting_runs_under_the_plan_within_bound(tiny_models, monkeypatch):
    from test_compose import CUTOUTS, LAYOUT

    from engine.dataset.compose import compose
    from engine.dataset.inpaint import Inpainter, InpaintSettings
    from engine.models.loaders import load_inpaint

    spy = AutocastSpy(monkeypatch)
    pipe = load_inpaint(tiny_models["inpaint"], "cpu")
    composition = compose(LAYOUT, CUTOUTS, 128, 0)
    settings = InpaintSettings(steps=4)
    painted = {}
    for name, plan in (("fp32", plan_device("cpu", cpu=PLAIN_CPU)),
                       ("bf16", plan_device("cpu", cpu=BF16_CPU))):
        result = Inpainter(pipe, plan).paint(composition, "a kitchen", settings, seed=3)
        painted[name] = np.asarray(result.painted, dtype=np.float64)
        calls = spy.take()
        assert calls and all(on == (name == "bf16") for on, _grad in calls)
    difference = np.abs(painted["bf16"] - painted["fp32"]).mean()
    assert 0 < difference <= PIXEL_BOUND


def test_training_precision_follows_the_plan_on_a_cpu():
    from engine.train.precision import plan_precision

    bf16 = plan_precision("cpu", "auto", "bfloat16")
    assert (bf16.weight_dtype, bf16.autocast_dtype) == (torch.float32, torch.bfloat16)
    assert not bf16.needs_scaler
    assert plan_precision("cpu", "bf16", "bfloat16").autocast_dtype == torch.bfloat16
    for setting, autocast in (("auto", None), ("no", "bfloat16"), ("fp16", "bfloat16"),
                              ("bf16", None)):
        got = plan_precision("cpu", setting, autocast)
        assert (got.weight_dtype, got.autocast_dtype) == (torch.float32, None)
    assert plan_precision("cpu", "auto").autocast_dtype is None  # callers that pass no plan


def test_training_previews_and_class_images_compute_as_the_plan_says(
        tiny_models, tmp_path, monkeypatch, bf16_cpu):
    from train_project import make_train_project

    from engine.jobs import JobFinished, run_inline

    spy = AutocastSpy(monkeypatch)
    project = make_train_project(tmp_path / "tr")
    config = {"steps": 2, "learning_rate": 1e-3, "batch_size": 2, "sample_every": 2,
              "sample_steps": 2, "checkpoint_every": 10, "prior_preservation": True,
              "class_images_per_concept": 1, "class_image_steps": 2}
    end = run_inline("train", {"project": str(project), "profile": "tiny", "device": "cpu",
                               "config": config})
    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    calls = spy.take()
    inference = [on for on, grad in calls if not grad]  # class images and the preview
    training = [on for on, grad in calls if grad]
    # 3 class words x 1 image, then the preview: 2 steps or more each (PNDM adds one).
    assert len(inference) >= 8 and all(inference)
    assert len(training) == 2 and all(training)  # the steps: bf16 autocast, fp32 weights
    manifest = json.loads((Path(end.result.export_dir) / "mycanvas_concepts.json").read_text())
    assert manifest["training_precision"] == "bfloat16"
    preview_bf16 = _preview(end.result.run_dir)

    save_settings(Settings(precision="float32"))
    project32 = make_train_project(tmp_path / "tr32")
    end32 = run_inline("train", {"project": str(project32), "profile": "tiny",
                                 "device": "cpu", "config": config})
    assert isinstance(end32, JobFinished), getattr(end32, "detail", end32)
    assert not any(on for on, _grad in spy.take())
    manifest = json.loads((Path(end32.result.export_dir) / "mycanvas_concepts.json").read_text())
    assert manifest["training_precision"] == "float32"
    difference = np.abs(preview_bf16 - _preview(end32.result.run_dir)).mean()
    assert 0 < difference <= PIXEL_BOUND


def _preview(run_dir: str) -> np.ndarray:
    from PIL import Image

    [sample] = sorted((Path(run_dir) / "samples").glob("*.png"))
    with Image.open(sample) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def _with_items(tree):
    import ast

    for node in ast.walk(tree):
        if isinstance(node, ast.With | ast.AsyncWith):
            yield node, [ast.unparse(item.context_expr) for item in node.items]


def test_autocast_is_never_entered_under_inference_mode():
    """Under inference_mode autocast re-casts every weight at every call (10x slower per big
    layer), so every bf16 forward pass runs under no_grad. Reads each engine module's `with`
    statements: none may open inference_mode together with an autocast, nor an autocast
    directly inside an inference_mode block."""
    import ast

    offenders = []
    for path in sorted(Path("engine").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, items in _with_items(tree):
            opens_inference = any("inference_mode" in item for item in items)
            autocasts = [i for i in items if "autocast" in i]
            inner = [i for stmt in node.body if isinstance(stmt, ast.With)
                     for i in (ast.unparse(it.context_expr) for it in stmt.items)
                     if "autocast" in i]
            if opens_inference and (autocasts or inner):
                offenders.append(f"{path}:{node.lineno}")
    assert not offenders, offenders
