"""Device policy and the out-of-memory retry."""

from __future__ import annotations

import pytest

from engine.device import (
    GIB,
    DevicePlan,
    is_out_of_memory,
    plan_device,
    retry_on_oom,
)
from engine.errors import InputError, MyCanvasError


def test_cpu_plan_is_fp32_without_offload():
    plan = plan_device("auto")  # no GPU on the test machines
    assert plan.device == "cpu" and plan.dtype == "float32"
    assert plan.cpu_offload is False
    assert plan.free_memory is None or plan.free_memory > 0
    assert "cpu (float32" in plan.describe()


def test_cpu_savers_follow_free_memory(monkeypatch):
    import engine.device as device

    monkeypatch.setattr(device, "_system_available", lambda: 2 * GIB)
    low = plan_device("cpu")
    assert low.attention_slicing and low.vae_tiling
    monkeypatch.setattr(device, "_system_available", lambda: 64 * GIB)
    high = plan_device("cpu")
    assert not high.attention_slicing and not high.vae_tiling


def test_bad_and_unavailable_devices_are_clear_errors():
    with pytest.raises(InputError, match="--device must be one of"):
        plan_device("tpu")
    with pytest.raises(InputError, match="no CUDA GPU"):
        plan_device("cuda")


def test_lean_plan_switches_savers_on():
    lean = plan_device("cpu", lean=True)
    assert lean.lean and lean.attention_slicing and lean.vae_tiling and not lean.cpu_offload


@pytest.mark.parametrize(
    "exc, expected",
    [
        (MemoryError(), True),
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate"),
         True),
        (RuntimeError("shape mismatch"), False),
        (ValueError("out of memory"), False),
    ],
)
def test_is_out_of_memory(exc, expected):
    assert is_out_of_memory(exc) is expected


def _plan() -> DevicePlan:
    return DevicePlan("cpu", "float32", None, False, False, False)


def test_retry_on_oom_retries_once_in_lean_mode():
    calls, logs = [], []

    def work(plan):
        calls.append(plan.lean)
        if not plan.lean:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory")
        return "ok"

    assert retry_on_oom(work, _plan(), logs.append) == "ok"
    assert calls == [False, True]
    assert "retrying once in lean mode" in logs[0]


def test_retry_on_oom_gives_up_with_clear_message():
    def work(plan):
        raise MemoryError()

    with pytest.raises(MyCanvasError, match="even with every memory saver on"):
        retry_on_oom(work, _plan())


def test_retry_on_oom_does_not_retry_other_errors():
    calls = []

    def work(plan):
        calls.append(plan)
        raise ValueError("bad prompt")

    with pytest.raises(ValueError):
        retry_on_oom(work, _plan())
    assert len(calls) == 1
