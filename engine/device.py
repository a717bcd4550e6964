"""Device policy: one function decides device, dtype and memory savers.

Order of preference: CUDA > Apple MPS > CPU. Half precision only where the device runs it
well (CPU computes in fp32). Memory savers are switched on from the free memory the device
reports; `lean=True` switches all of them on, which is what an out-of-memory retry uses.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from engine.errors import InputError, MyCanvasError

GIB = 1024**3
DEVICES = ("auto", "cuda", "mps", "cpu")
T = TypeVar("T")


@dataclass(frozen=True)
class DevicePlan:
    device: str  # "cuda", "cuda:1", "mps" or "cpu"
    dtype: str  # "float16", "bfloat16" or "float32"
    free_memory: int | None  # bytes the device can still give us, when it says
    attention_slicing: bool
    vae_tiling: bool
    cpu_offload: bool
    lean: bool = False

    @property
    def torch_dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype)

    def leaner(self) -> DevicePlan:
        """The same device with every memory saver on (offload only where it exists)."""
        return replace(
            self, lean=True, attention_slicing=True, vae_tiling=True,
            cpu_offload=self.device.startswith("cuda"),
        )

    def describe(self) -> str:
        savers = [n for n, on in (("attention slicing", self.attention_slicing),
                                  ("VAE tiling", self.vae_tiling),
                                  ("CPU offload", self.cpu_offload)) if on]
        mem = f", {self.free_memory / GIB:.1f} GiB free" if self.free_memory is not None else ""
        return f"{self.device} ({self.dtype}{mem}; savers: {', '.join(savers) or 'none'})"


def _cuda_free(torch: Any, index: int) -> int | None:
    try:
        free, _total = torch.cuda.mem_get_info(index)
        return int(free)
    except Exception:
        return None


def _system_available() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        return None


def free_memory(device: str) -> int | None:
    """Bytes `device` can still give (CUDA: its own memory; CPU and MPS: the system's)."""
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return _cuda_free(torch, index) if torch.cuda.is_available() else None
    return _system_available()


def plan_device(requested: str | None = "auto", *, lean: bool = False) -> DevicePlan:
    """Choose device, dtype and memory savers. `requested`: auto, cuda, cuda:N, mps or cpu."""
    import torch

    req = (requested or "auto").strip().lower()
    if req not in DEVICES and not req.startswith("cuda:"):
        raise InputError(f"--device must be one of {', '.join(DEVICES)} or cuda:N, got {req!r}")
    has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if req == "auto":
        req = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if req.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("--device cuda was asked for, but no CUDA GPU is available here")
        index = int(req.split(":", 1)[1]) if ":" in req else 0
        if index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise InputError(f"--device {req}: this computer has {count} GPU(s)")
        free = _cuda_free(torch, index)
        # SD 1.5 in fp16 needs ~3.5 GB for inference and more for training; below that,
        # slicing and tiling, and below 3 GB offload whole models to the CPU between uses.
        plan = DevicePlan(
            device=req, dtype="float16", free_memory=free,
            attention_slicing=free is not None and free < 6 * GIB,
            vae_tiling=free is not None and free < 6 * GIB,
            cpu_offload=free is not None and free < 3 * GIB,
        )
    elif req == "mps":
        if not has_mps:
            raise InputError("--device mps was asked for, but Apple MPS is not available here")
        free = _system_available()  # unified memory: the system's free memory is the GPU's
        plan = DevicePlan(
            device="mps", dtype="float16", free_memory=free,
            attention_slicing=free is None or free < 16 * GIB,
            vae_tiling=free is not None and free < 8 * GIB, cpu_offload=False,
        )
    else:
        free = _system_available()
        plan = DevicePlan(
            device="cpu", dtype="float32", free_memory=free,
            attention_slicing=free is not None and free < 8 * GIB,
            vae_tiling=free is not None and free < 4 * GIB, cpu_offload=False,
        )
    return plan.leaner() if lean else plan


def apply_memory_savers(pipe: Any, plan: DevicePlan) -> Any:
    """Move a diffusers pipeline to the plan's device and switch on its savers."""
    if plan.cpu_offload and hasattr(pipe, "enable_model_cpu_offload"):
        pipe.enable_model_cpu_offload(device=plan.device)
    else:
        pipe.to(plan.device)
    if plan.attention_slicing and hasattr(pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing()
    if plan.vae_tiling and hasattr(pipe, "vae") and hasattr(pipe.vae, "enable_tiling"):
        pipe.vae.enable_tiling()
    return pipe


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's OOM and for allocator failures that arrive as a plain RuntimeError."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "failed to allocate" in text or "can't allocate" in text
        or "defaultcpuallocator" in text
    )


def free_device_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            torch.mps.empty_cache()
    except Exception:
        pass


def retry_on_oom(
    fn: Callable[[DevicePlan], T], plan: DevicePlan, log: Callable[[str], None] | None = None,
    before_retry: Callable[[], None] | None = None,
) -> T:
    """Run fn(plan); on out-of-memory free what `before_retry` frees (the warm models), empty
    the caches and retry once with every saver on."""
    try:
        return fn(plan)
    except Exception as exc:
        if not is_out_of_memory(exc) or plan.lean:
            raise
    if before_retry is not None:
        before_retry()
    free_device_memory()
    lean = plan.leaner()
    if log:
        log(f"Out of memory on {plan.device}; retrying once in lean mode ({lean.describe()})")
    try:
        return fn(lean)
    except Exception as exc:
        if is_out_of_memory(exc):
            free_device_memory()
            raise MyCanvasError(
                f"Out of memory on {plan.device}, even with every memory saver on. Close other "
                "programs, lower the resolution or pick a smaller model profile."
            ) from exc
        raise
