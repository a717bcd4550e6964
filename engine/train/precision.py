"""Which dtypes a training step runs in, per device.

float32 on CPU and MPS (their half-precision training is slow or unsupported). On CUDA the
frozen weights are half precision and the step runs under autocast: bf16 where the GPU has
it, else fp16, which then needs a gradient scaler (small fp16 gradients underflow to zero).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Precision:
    device: torch.device
    weight_dtype: torch.dtype  # of the frozen weights
    autocast_dtype: torch.dtype | None  # None: no autocast (float32 throughout)

    @property
    def needs_scaler(self) -> bool:
        return self.autocast_dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def plan_precision(device: str, setting: str) -> Precision:
    """Mixed precision on CUDA only; `setting` is TrainConfig.mixed_precision."""
    dev = torch.device(device)
    if dev.type != "cuda" or setting == "no":
        return Precision(dev, torch.float32, None)
    if setting == "auto":
        setting = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = torch.bfloat16 if setting == "bf16" else torch.float16
    return Precision(dev, dtype, dtype)
