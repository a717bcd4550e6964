"""Device policy: one function decides device, precision and memory savers.

Order of preference: CUDA > Apple MPS > CPU. Half precision only where the device runs it
well: fp16 weights on CUDA and MPS; on a CPU the weights stay fp32 and, where the processor
has bf16 units (x86: AVX512-BF16 or AMX-BF16; Arm: FEAT_BF16), inference computes under
`torch.autocast("cpu", bfloat16)`: matrix products and convolutions in bf16, norms and
softmax in fp32. The gain depends on the kind of CPU (`CpuFacts.kind`): SD 1.5's UNet call at
512 px 2.8x faster with AMX, 1.56x with AVX512-BF16 alone (Zen 4); an AVX2 CPU has no bf16
units and stays in float32. Channels-last weights and float32 attention inside the bf16 step
are chosen per kind too (CHANNELS_LAST_BF16, ATTENTION_FP32_KINDS). The `precision` setting
"float32" turns bf16 off.
Every stage wraps its diffusion and CLIP forward passes in `inference_autocast(plan)`.
Memory savers are switched on from the free memory the device reports; `lean=True` switches
all of them on, which is what an out-of-memory retry uses.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from engine.errors import InputError, MyCanvasError

GIB = 1024**3
DEVICES = ("auto", "cuda", "mps", "cpu")
# "auto": the fastest precision the device runs well; "float32": full precision everywhere.
PRECISIONS = ("auto", "float32")
T = TypeVar("T")
# The capability flags that mean fast bf16 matrix products, per architecture family. Not
# oneDNN's own bf16 check: that is true on any AVX-512 CPU, where bf16 is emulated and slower.
# Arm's FEAT_BF16 (BFDOT/BFMMLA: Graviton 3, Neoverse V1/V2) is what torch's aarch64 builds
# run bf16 matmuls on (oneDNN + ACL); measured only on x86 here.
BF16_UNITS = {"x86": ("avx512_bf16", "amx_bf16"), "arm": ("bf16", "sve_bf16")}
FORCED_FP32 = "float32 as the settings ask"
# Channels-last weights only where they pay for their memory. Under bf16 autocast oneDNN's
# convolutions skip a layout copy per call: with AMX the UNet step 17 % and the VAE decode
# 2.5x faster; with AVX512-BF16 alone (Zen 4) the VAE decode 14 %, the UNet 1.4-2.4 % for
# 2.7 GB more peak memory, so there the UNet stays as it is: a CLI generation as such a CPU
# peaks at 7.1 GB, 9.3 GB with both (tests/benchmarks/bench_cpu_layout.py
# `cli-generate-memory`). In float32 no memory is at
# stake: nothing measured on AMX; on AVX2 (`cpu-layout`, 256 px) the UNet 3 % and the VAE
# decode 6 % faster, not switched on yet (two runs each on a shared machine).
CHANNELS_LAST_BF16 = {"amx": ("unet", "vae"), "avx512-bf16": ("vae",)}
# Attention gains nothing from bf16 without AMX (Zen 4, SD 1.5 UNet call: 3.6 s in float32,
# 4.0 s in bf16, while its convolutions and linear layers gain 2.1-2.2x): it runs in float32
# inside the bf16 step there (FloatAttention).
ATTENTION_FP32_KINDS = ("avx512-bf16",)


@dataclass(frozen=True)
class CpuFacts:
    architecture: str  # "x86_64", "aarch64", ...
    bf16_units: tuple[str, ...]  # the bf16 instruction sets it has, e.g. ("avx512_bf16",)

    @property
    def kind(self) -> str:
        """The kind of CPU where speed behaves differently (CPU_KINDS)."""
        if _family(self.architecture) == "arm":
            return "arm-bf16" if self.bf16_units else "arm"
        if "amx_bf16" in self.bf16_units:
            return "amx"
        return "avx512-bf16" if self.bf16_units else "avx2"


# AMX: bf16 matrix tiles (Intel Sapphire Rapids and later); AVX512-BF16 alone: bf16 dot
# products in vector registers (AMD Zen 4/5, Intel Cooper Lake); AVX2: x86 without bf16 units
# (float32 only); Arm with or without FEAT_BF16.
CPU_KINDS = ("amx", "avx512-bf16", "avx2", "arm-bf16", "arm")


def _family(architecture: str) -> str:
    arch = architecture.lower()
    if arch in ("x86_64", "amd64", "x86", "i686", "i386"):
        return "x86"
    return "arm" if arch.startswith(("aarch64", "arm")) else arch


def facts_from_capabilities(caps: Mapping[str, Any], architecture: str) -> CpuFacts:
    units = BF16_UNITS.get(_family(architecture), ())
    return CpuFacts(architecture, tuple(u for u in units if caps.get(u) is True))


def facts_from_cpuinfo(text: str, architecture: str) -> CpuFacts:
    """/proc/cpuinfo's flags (x86) or Features (Arm) line, for a torch without cpu queries."""
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return facts_from_capabilities({f: True for f in flags}, architecture)


@functools.cache
def invalid_image_error(what: str, plan: DevicePlan) -> MyCanvasError:
    """A model made NaN pixels. Half precision can do that on a GPU; in float32 on the CPU it
    is the weights (NaN or overflowing values in the files), so the advice differs."""
    half = plan.dtype != "float32" or plan.autocast_dtype is not None
    if plan.device == "cpu" and not half:
        advice = ("On the CPU in full precision this comes from the model's weights: check "
                  "or re-download the profile's model files, or try another model profile.")
    elif plan.device == "cpu":
        advice = (f"Reduced precision ({plan.autocast_dtype or plan.dtype}) can do this: set "
                  "the precision to float32 in the settings, or try another model profile.")
    else:
        advice = ("Half precision can do this on some devices: try --device cpu, or another "
                  "model profile.")
    return MyCanvasError(f"{what} produced an invalid image (NaN values). {advice}")


def uint8_pixels(images: Any, plan: DevicePlan, what: str) -> Any:
    """The first of a pipeline's float pictures (0..1) as uint8 pixels, rounded; NaN pixels
    are invalid_image_error(what, plan) (the sampler and the inpainter store the same way)."""
    import numpy as np

    array = np.asarray(images[0], dtype=np.float32)
    if not np.isfinite(array).all():
        raise invalid_image_error(what, plan)
    return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)


def cpu_facts() -> CpuFacts:
    """This processor's bf16 units, from torch's CPU capability query (cpuinfo)."""
    import platform

    import torch

    try:
        caps = dict(torch.cpu.get_capabilities())
        return facts_from_capabilities(caps, str(caps.get("architecture") or platform.machine()))
    except (AttributeError, RuntimeError):  # a torch without the query
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        return facts_from_cpuinfo(text, platform.machine())


def cpu_compute(precision: str, facts: CpuFacts) -> tuple[str | None, str]:
    """(autocast dtype or None, why) for CPU inference."""
    if precision == "float32":
        return None, FORCED_FP32
    if facts.bf16_units:
        return "bfloat16", f"float32 weights, bfloat16 compute on {'+'.join(facts.bf16_units)}"
    return None, "float32: no bf16 units on this CPU"


@dataclass(frozen=True)
class DevicePlan:
    device: str  # "cuda", "cuda:1", "mps" or "cpu"
    dtype: str  # "float16", "bfloat16" or "float32"
    free_memory: int | None  # bytes the device can still give us, when it says
    attention_slicing: bool
    vae_tiling: bool
    cpu_offload: bool
    lean: bool = False
    # CPU only: inference runs under torch.autocast in this dtype ("bfloat16"), weights stay
    # `dtype`. None: no autocast. Read it through inference_autocast(plan).
    autocast_dtype: str | None = None
    precision_note: str = ""  # the precision and why, for people (describe() shows it)
    cpu_kind: str = ""  # CPU plans: the processor's kind (CPU_KINDS), which speeds differ by
    # CPU plans: the models ("unet", "vae") whose weights go channels-last, where it pays
    channels_last: tuple[str, ...] = ()
    # CPU plans computing in bf16: attention in float32 where bf16 makes it no faster
    attention_fp32: bool = False

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
        precision = self.precision_note or self.dtype
        return f"{self.device} ({precision}{mem}; savers: {', '.join(savers) or 'none'})"


def inference_autocast(plan: DevicePlan | None) -> contextlib.AbstractContextManager[Any]:
    """The context every inference forward pass (diffusion pipeline, UNet, VAE, CLIP) runs in:
    `torch.autocast(<device>, plan.autocast_dtype)` when the plan computes in a lower precision
    than its weights (bf16 on a CPU with bf16 units), else a no-op. Enter it under
    torch.no_grad, not inference_mode: autocast keeps its bf16 copy of a weight for the whole
    context only for weights that require grad and outside inference_mode; otherwise it
    re-casts every weight at every call (10x slower on a 4096x4096 linear layer here).
    Outputs may come back in bf16 (call .float())."""
    if plan is None or plan.autocast_dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(plan.device.split(":", 1)[0], dtype=getattr(torch, plan.autocast_dtype))


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


def plan_device(requested: str | None = "auto", *, lean: bool = False,
                precision: str = "auto", cpu: CpuFacts | None = None) -> DevicePlan:
    """Choose device, precision and memory savers. `requested`: auto, cuda, cuda:N, mps or
    cpu; `precision`: the user's setting (PRECISIONS); `cpu`: the processor's facts (this
    one's when None)."""
    import torch

    req = (requested or "auto").strip().lower()
    if req not in DEVICES and not req.startswith("cuda:"):
        raise InputError(f"--device must be one of {', '.join(DEVICES)} or cuda:N, got {req!r}")
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
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
        facts = cpu if cpu is not None else cpu_facts()
        autocast, why = cpu_compute(precision, facts)
        plan = DevicePlan(
            device="cpu", dtype="float32", free_memory=free,
            attention_slicing=free is not None and free < 8 * GIB,
            vae_tiling=free is not None and free < 4 * GIB, cpu_offload=False,
            autocast_dtype=autocast, precision_note=why, cpu_kind=facts.kind,
            channels_last=CHANNELS_LAST_BF16.get(facts.kind, ()) if autocast else (),
            attention_fp32=autocast is not None and facts.kind in ATTENTION_FP32_KINDS,
        )
    if precision == "float32" and plan.dtype != "float32":
        plan = replace(plan, dtype="float32", precision_note=FORCED_FP32)
    return plan.leaner() if lean else plan


def float32_cost(auto: DevicePlan) -> str:
    """What the precision setting "float32" costs on the device of `auto` (its plan under
    "auto"), in one line for the settings."""
    if auto.device == "cpu" and auto.autocast_dtype is None:
        return ("No cost on this CPU: it has no bf16 units, so auto computes in float32 "
                "already.")
    if auto.device == "cpu":
        return (f"Slower on this CPU: auto computes in {auto.autocast_dtype} on its bf16 units "
                "(convolutions and linear layers about 2x faster, measured on a Zen 4); "
                "float32 keeps no bf16 copies of the weights, so it needs a little less "
                "memory. The pictures differ slightly.")
    return (f"Slower and twice the memory for the weights on {auto.device}: auto keeps them "
            f"in {auto.dtype} (Stable Diffusion 1.5: about 2 GB more in float32).")


def apply_memory_savers(pipe: Any, plan: DevicePlan) -> Any:
    """Move a diffusers pipeline to the plan's device and switch on its savers; on a CPU, put
    the weights of the plan's `channels_last` models in that layout and, where the plan says,
    run attention in float32 inside the bf16 step."""
    if plan.cpu_offload and hasattr(pipe, "enable_model_cpu_offload"):
        pipe.enable_model_cpu_offload(device=plan.device)
    else:
        pipe.to(plan.device)
    if plan.device == "cpu" and plan.channels_last:
        import torch

        for name in plan.channels_last:
            model = getattr(pipe, name, None)
            if isinstance(model, torch.nn.Module):
                model.to(memory_format=torch.channels_last)
    if plan.attention_slicing and hasattr(pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing()
    elif plan.attention_fp32 and hasattr(getattr(pipe, "unet", None), "set_attn_processor"):
        pipe.unet.set_attn_processor(FloatAttention())
    if plan.vae_tiling and hasattr(pipe, "vae") and hasattr(pipe.vae, "enable_tiling"):
        pipe.vae.enable_tiling()
    return pipe


class FloatAttention:
    """diffusers' default attention (`AttnProcessor2_0`'s arithmetic) with the attention
    product in float32, autocast off: for CPUs where bf16 does not speed attention up
    (ATTENTION_FP32_KINDS). Its projections still run under the step's autocast, and its
    output goes back in their dtype."""

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None,
                 attention_mask: Any = None, temb: Any = None, *args: Any, **kwargs: Any
                 ) -> Any:
        import torch
        from torch.nn import functional

        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        batch, sequence, _ = context.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key, value = attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads

        def heads(t: Any) -> Any:
            return t.view(batch, -1, attn.heads, head_dim).transpose(1, 2)

        query, key, value = heads(query), heads(key), heads(value)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        with torch.autocast(query.device.type, enabled=False):
            mask = attention_mask.float() if attention_mask is not None and \
                attention_mask.is_floating_point() else attention_mask
            out = functional.scaled_dot_product_attention(
                query.float(), key.float(), value.float(), attn_mask=mask, dropout_p=0.0,
                is_causal=False)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


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
