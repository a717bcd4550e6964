"""The precision a generation runs in, from the device plan (engine.device).

CUDA and MPS: the plan's dtype is the weights' (float16). CPU: the weights stay float32; a
plan that asks for bfloat16 (the CPU policy does on CPUs with fast bf16 units) runs the
pipeline under `torch.autocast("cpu", bfloat16)`, which computes matrix products and
convolutions in bf16 and keeps norms and softmax in fp32 (1.6x faster per picture at SD 1.5
size on this AMX CPU: tests/benchmarks/bench_generate.py). Any other dtype on a CPU (fp16,
which CPUs run slowly and badly) runs plain fp32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.device import DevicePlan


@dataclass(frozen=True)
class InferencePrecision:
    device: str
    weight_dtype: str  # what the pipeline's weights are loaded in
    autocast_dtype: str | None = None  # computed under torch.autocast in this dtype

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(self.device.split(":")[0], dtype=getattr(torch,
                                                                       self.autocast_dtype))

    def describe(self) -> str:
        if self.autocast_dtype is None:
            return self.weight_dtype
        return f"{self.weight_dtype} weights, {self.autocast_dtype} autocast"


def inference_precision(plan: DevicePlan) -> InferencePrecision:
    """The plan's precision. On a CPU, bf16 compute is asked for either by dtype "bfloat16"
    or by the plan's `autocast_dtype` (the CPU policy's field, where it has one)."""
    autocast = getattr(plan, "autocast_dtype", None)
    if plan.device == "cpu":
        wanted = autocast or plan.dtype
        return InferencePrecision("cpu", "float32", "bfloat16" if wanted == "bfloat16" else None)
    return InferencePrecision(plan.device, plan.dtype, autocast)
