"""Personalize's cost model: SD 1.5's counted work at this machine's calibrated speeds, the
calibration's file, and the kinds of CPU (the stage timings that refine every profile's
figures: test_personalize_timings.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from engine.device import CpuFacts, DevicePlan, plan_device
from engine.models.profiles import get_profile
from engine.personalize import PersonalizeParams, personalize_plan
from engine.personalize.calibration import (
    Calibration,
    calibrate,
    load_calibration,
    machine_key,
)
from engine.personalize.costs import ROUGH_RATES, cost_table
from engine.personalize.state import ChainState
from engine.personalize.work import SD15, Work

CPU = DevicePlan("cpu", "float32", 8 << 30, False, False, False, cpu_kind="avx2")

FACTS = {"amx": CpuFacts("x86_64", ("avx512_bf16", "amx_bf16")),
         "avx512-bf16": CpuFacts("x86_64", ("avx512_bf16",)),
         "avx2": CpuFacts("x86_64", ()),
         "arm-bf16": CpuFacts("aarch64", ("bf16",)),
         "arm": CpuFacts("aarch64", ())}


@pytest.fixture(autouse=True)
def own_calibration_file(monkeypatch, tmp_path):
    """Each test starts uncalibrated: the app's data folder is shared by the session, and
    another test's plan on a real profile calibrates this machine into it."""
    import engine.personalize.calibration as calibration_module

    monkeypatch.setattr(calibration_module, "calibration_path",
                        lambda: tmp_path / "calibration.json")


def fresh() -> ChainState:
    return ChainState(concepts=3, photos=4, photos_to_segment=4, pixels_to_segment=400_000,
                      layouts=(), planned_layouts=(), dataset_indices=frozenset(), run=None,
                      pictures_by_batch={}, pictures=(), unscored=(), free_disk_bytes=10**11)


def calibration(speed: float = 1.0) -> Calibration:
    rates = {"float32": {k: v * speed for k, v in ROUGH_RATES["avx2"]["float32"].items()}}
    return Calibration(machine_key("avx2"), rates, 3.0, "2026-12-07T12:00:00")


def stages(plan) -> dict[str, float]:
    return {s.stage: s.seconds for s in plan.stages}


def quick(cal: Calibration | None):
    return personalize_plan(fresh(), PersonalizeParams(project="/x", preset="quick"), CPU,
                            get_profile("sd15"), cal)


# --------------------------------------------------------------------------- the work


@pytest.mark.slow
def test_the_work_constants_are_sd15s_architecture_counted_again():
    """SD15's counts come from count_work on SD 1.5's published configs (meta tensors:
    shapes only: 2-6 s alone, up to a minute on a busy machine)."""
    import diffusers
    import torch
    from sd15_random import SD15_INPAINT_UNET, SD15_TEXT_ENCODER, SD15_VAE
    from transformers import CLIPTextConfig, CLIPTextModel

    from engine.personalize.work import count_work

    with torch.device("meta"), torch.no_grad():
        unet = diffusers.UNet2DConditionModel(**{**SD15_INPAINT_UNET, "in_channels": 4})
        vae = diffusers.AutoencoderKL(**SD15_VAE)
        text = CLIPTextModel(CLIPTextConfig(**SD15_TEXT_ENCODER))
        latents, image = torch.randn(1, 4, 64, 64), torch.randn(1, 3, 512, 512)
        got = {
            "unet_guided": count_work(lambda: unet(torch.randn(2, 4, 64, 64),
                                                   torch.tensor([500, 500]),
                                                   torch.randn(2, 77, 768)), [unet]),
            "vae_decode": count_work(lambda: vae.decode(latents), [vae]),
            "vae_encode": count_work(lambda: vae.encode(image), [vae]),
            "text": count_work(lambda: text(torch.zeros(1, 77, dtype=torch.long)), [text]),
        }
    for name, work in got.items():
        for field in dataclasses.fields(Work):
            assert getattr(work, field.name) == pytest.approx(
                getattr(SD15[name], field.name), rel=1e-3), (name, field.name)


def test_work_adds_scales_and_divides_by_speed():
    w = Work(conv=2e9, linear=1e9, attention=1e9, norm=1e6) * 2 + Work(conv=1e9)
    assert w.seconds({"conv": 1e9, "linear": 1e9, "attention": 2e9, "norm": 1e6}) == 5 + 2 + 1 + 2


# --------------------------------------------------------------------------- the plan


def test_a_plan_before_calibration_says_it_is_rough_and_after_says_where_from():
    rough = quick(None)
    assert not rough.measured and "rough estimate" in rough.estimate
    assert "mycanvas doctor --calibrate" in rough.estimate
    calibrated = quick(calibration())
    assert calibrated.measured and "calibrated on this computer" in calibrated.estimate


def test_the_model_calls_take_what_the_calibrated_speed_says():
    slow, fast = stages(quick(calibration(1.0))), stages(quick(calibration(2.0)))
    for stage in ("dataset", "train", "generate"):
        assert fast[stage] < slow[stage]  # loads and the planner do not speed up
    table = cost_table("sd15", "cpu", "avx2", calibration(2.0))
    unet = SD15["unet_guided"].seconds(calibration(2.0).rates["float32"])
    assert table.dataset.per_step == pytest.approx(unet)
    assert table.train.per_unit == pytest.approx(
        SD15["train_step"].seconds(calibration(2.0).rates["float32"]))


def test_each_cpu_kind_has_its_rough_speeds_and_bf16_only_where_it_has_units():
    bf16_unet = {}
    for kind, facts in FACTS.items():
        plan = plan_device("cpu", cpu=facts)
        assert plan.cpu_kind == kind
        table = cost_table("sd15", "cpu-bf16" if plan.autocast_dtype else "cpu", kind)
        bf16_unet[kind] = table.generate.per_step
        assert (plan.autocast_dtype == "bfloat16") == (kind in ("amx", "avx512-bf16", "arm-bf16"))
    assert bf16_unet["amx"] < bf16_unet["avx512-bf16"] < bf16_unet["avx2"]


def test_stage_timings_refine_sd15s_plan_too(tmp_path):
    from engine.personalize.timings import load_timings, record_stage

    path = tmp_path / "stage_timings.json"
    timings = load_timings("avx2", path)
    cal = calibration()
    plan = quick(cal)
    train = next(s for s in plan.stages if s.stage == "train")
    record_stage(timings, "sd15", "cpu", "train", planned_load=train.load_seconds,
                 planned=train.seconds, load=train.load_seconds, took=2 * train.seconds,
                 path=path)
    after = personalize_plan(fresh(), PersonalizeParams(project="/x", preset="quick"), CPU,
                             get_profile("sd15"), cal, timings)
    assert stages(after)["train"] == pytest.approx(2 * train.seconds, rel=0.01)
    assert stages(after)["dataset"] == stages(plan)["dataset"]


# --------------------------------------------------------------------------- the file


def test_calibration_measures_stores_and_is_found_again(tmp_path):
    path = tmp_path / "calibration.json"
    cal = calibrate("avx2", ("float32",), latent_side=8, path=path)
    assert set(cal.rates) == {"float32"} and all(r > 0 for r in cal.rates["float32"].values())
    assert cal.machine["threads"] >= 1 and cal.machine["torch"]
    found = load_calibration("avx2", path)
    assert found is not None and found.rates == cal.rates
    # another kind of CPU (or thread count, or torch) measures again
    assert load_calibration("amx", path) is None


def test_a_bad_calibration_file_is_set_aside_and_reported(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text('{"format": 1, "rates": {"float32": {"conv": -1}}}')
    logs: list[str] = []
    assert load_calibration("avx2", path, log=logs.append) is None
    assert not path.exists() and (tmp_path / "calibration.json.bad").exists()
    assert "calibration.json" in logs[0] and "measuring again" in logs[0]


def test_the_plan_job_calibrates_once_for_a_real_profile_never_for_test_models(monkeypatch):
    import engine.personalize.calibration as calibration_module
    from engine.personalize.planning import calibration_for

    made: list[str] = []

    def fake(plan, path=None):
        made.append(plan.cpu_kind)
        return calibration()

    monkeypatch.setattr(calibration_module, "calibrate_device", fake)
    assert calibration_for(CPU, get_profile("tiny")) is None
    assert calibration_for(dataclasses.replace(CPU, device="cuda"), get_profile("sd15")) is None
    assert calibration_for(CPU, get_profile("sd15"), measure=False) is None
    assert calibration_for(CPU, get_profile("sd15")) is not None and made == ["avx2"]


def test_doctor_calibrates_when_asked(capsys):
    from engine.cli import main

    assert main(["doctor", "--device", "cpu", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["cpu_kind"] and "not calibrated" in before["calibration"]["summary"]
    assert main(["doctor", "--device", "cpu", "--calibrate", "--json"]) == 0
    after = json.loads(capsys.readouterr().out)["calibration"]
    assert after["rates"]["float32"]["conv"] > 0 and after["seconds"] < 60
    assert "GFLOP/s" in after["summary"]
    assert load_calibration(before["cpu_kind"]) is not None
