"""The work of one model call, by kind (the calibration's kernels), and how it is counted.

`count_work(run, modules)` runs a model call once on torch's meta device (shapes only: no
memory, no arithmetic) and counts floating-point operations with torch's FlopCounterMode:
convolutions; batched matrix products, which are attention (on the meta device
scaled_dot_product_attention runs as its two batched products, forward and backward); the
other matrix products (linear layers); and, by forward hooks, the elements its norms and
activations produce. SD15 holds those counts for SD 1.5's model calls at 512 px
(tests/test_personalize_costs.py counts them again from the architecture and checks them).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

NORM_MODULES = ("GroupNorm", "LayerNorm", "SiLU", "GELU", "QuickGELUActivation",
                "GELUActivation")


@dataclass(frozen=True)
class Work:
    conv: float = 0.0  # FLOPs
    linear: float = 0.0  # FLOPs of matrix products outside attention
    attention: float = 0.0  # FLOPs inside scaled_dot_product_attention
    norm: float = 0.0  # elements out of norms and activations

    def __add__(self, other: Work) -> Work:
        return Work(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __mul__(self, k: float) -> Work:
        return Work(*(getattr(self, f.name) * k for f in fields(self)))

    def seconds(self, rates: dict[str, float]) -> float:
        """Time at `rates` (kernel -> FLOP/s, norm: elements/s)."""
        return sum(getattr(self, f.name) / rates[f.name] for f in fields(self))

    def rounded(self) -> Work:
        return Work(*(float(f"{getattr(self, f.name):.4g}") for f in fields(self)))


def count_work(run: Any, modules: Any) -> Work:
    """The work of `run()` (a model call on meta tensors), with the norms of `modules` (the
    torch modules it calls) counted by forward hooks."""
    from torch.utils.flop_counter import FlopCounterMode

    norm = [0.0]
    hooks = [m.register_forward_hook(lambda _m, _i, out: norm.__setitem__(
                 0, norm[0] + float(out.numel())))
             for model in modules for m in model.modules()
             if type(m).__name__ in NORM_MODULES]
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            run()
    finally:
        for hook in hooks:
            hook.remove()
    conv = linear = attention = 0.0
    for op, flops in counter.get_flop_counts().get("Global", {}).items():
        name = str(op)
        if "convolution" in name:
            conv += flops
        elif "bmm" in name or "scaled_dot_product" in name:
            attention += flops
        else:
            linear += flops
    return Work(conv, linear, attention, norm[0])


# SD 1.5 at 512 px (64² latents, 77 text tokens), counted by count_work on the published
# architecture. unet_guided: one UNet call with classifier-free guidance (batch 2);
# train_step: a Custom Diffusion step, batch 1 latent, forward and backward (k/v and the new
# token rows trained); text: the text encoder on one prompt.
SD15 = {
    "unet_guided": Work(conv=8.879e11, linear=4.666e11, attention=2.521e11, norm=2.265e8),
    "vae_encode": Work(conv=1.074e12, linear=8.59e9, attention=3.436e10, norm=4.844e8),
    "vae_decode": Work(conv=2.472e12, linear=8.59e9, attention=3.436e10, norm=9.165e8),
    "text": Work(conv=0.0, linear=1.308e10, attention=2.186e8, norm=4.317e6),
    "train_step": Work(conv=1.744e12, linear=9.828e11, attention=6.713e11, norm=2.351e8),
}
