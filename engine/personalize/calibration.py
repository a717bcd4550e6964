"""How fast this computer runs the kinds of work a diffusion model is made of, measured here.

The plan's CPU estimates are work ÷ speed: each model call's work (floating-point operations
of its convolutions, linear layers and attention, elements through its norms and activations;
`engine/personalize/work.py`) divided by this machine's speed at each kind of work. The speed
comes from a calibration: a few representative shapes at the profile's resolution (a 3×3
convolution and a linear layer of the UNet's first level, attention over its 64² latent
tokens, a group norm with SiLU on a VAE-sized tensor), timed in each precision the device plan
may use, best of a few runs. It takes a few seconds, runs once per machine, thread count and
torch version (`mycanvas doctor --calibrate`, or the first plan that needs it), and is stored
in the app's data folder. What the kernels cannot see (model loads, disk, the Python around
the models) the next plan learns from what each finished stage took (timings.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.atomic import atomic_write_text

if TYPE_CHECKING:
    from engine.device import DevicePlan

FORMAT = 1
BF16_KINDS = ("amx", "avx512-bf16", "arm-bf16")  # CPU kinds whose plans may compute in bf16
KERNELS = ("conv", "linear", "attention", "norm")  # norm: elements per second, others FLOP/s


def calibration_path() -> Path:
    from engine.paths import data_dir

    return data_dir() / "calibration.json"


def cpu_name() -> str:
    """The processor's model name, for people and for the calibration's key."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"
                                                    ).splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_key(kind: str) -> dict[str, Any]:
    """What a calibration is valid for: another CPU, thread count or torch measures again."""
    import torch

    return {"cpu": cpu_name(), "kind": kind, "architecture": platform.machine(),
            "threads": torch.get_num_threads(), "torch": torch.__version__.split("+")[0]}


@dataclass
class Calibration:
    machine: dict[str, Any]
    rates: dict[str, dict[str, float]]  # precision ("float32", "bfloat16") -> kernel -> rate
    seconds: float  # what the measurement took
    measured_at: str

    def describe(self) -> str:
        m = self.machine
        return (f"calibrated on this computer ({m['cpu']}, {m['threads']} thread(s), torch "
                f"{m['torch']}, {self.measured_at[:10]})")

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "machine": self.machine, "rates": self.rates,
                "seconds": self.seconds, "measured_at": self.measured_at}


def _from_dict(raw: dict[str, Any]) -> Calibration:
    if raw.get("format") != FORMAT:
        raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT}")
    rates = {str(p): {k: float(v[k]) for k in KERNELS} for p, v in dict(raw["rates"]).items()}
    if "float32" not in rates or any(r <= 0 or not math.isfinite(r)
                                     for v in rates.values() for r in v.values()):
        raise ValueError("rates must be positive, float32 among them")
    return Calibration(dict(raw["machine"]), rates, float(raw["seconds"]),
                       str(raw["measured_at"]))


def load_calibration(kind: str, path: Path | None = None,
                     log: Callable[[str], None] | None = None) -> Calibration | None:
    """This machine's calibration, or None when there is none for it (another CPU, thread
    count or torch measured the file). A file that cannot be read is set aside as
    `calibration.json.bad` and reported: the next plan calibrates again."""
    path = path or calibration_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        found = _from_dict(raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        bad = path.with_name(path.name + ".bad")
        with contextlib.suppress(OSError):
            os.replace(path, bad)
        if log:
            log(f"{path}: unreadable calibration ({exc}); set aside as {bad.name}, "
                "measuring again")
        return None
    return found if found.machine == machine_key(kind) else None


def save_calibration(cal: Calibration, path: Path | None = None) -> Path:
    path = path or calibration_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(cal.to_dict(), indent=2))
    return path


# --------------------------------------------------------------------------- the kernels


def kernel_cases(latent_side: int) -> dict[str, tuple[float, Callable[[], Any]]]:
    """kernel -> (work of one call, the call): shapes of the UNet's first level at the
    profile's resolution (latent_side² tokens; attention: 2 of its 8 heads of 40), the norm
    on a tensor of the VAE decoder's last level."""
    import torch
    from torch.nn import functional

    gen = torch.Generator().manual_seed(0)
    tokens, channels, heads = latent_side * latent_side, 320, 2
    conv_w = torch.randn(channels, channels, 3, 3, generator=gen) * 0.02
    conv_x = torch.randn(1, channels, latent_side, latent_side, generator=gen)
    lin_w = torch.randn(4 * channels, channels, generator=gen) * 0.02
    lin_x = torch.randn(tokens, channels, generator=gen)
    q, k, v = (torch.randn(1, heads, tokens, 40, generator=gen) for _ in range(3))
    side = 4 * latent_side
    norm_x = torch.randn(1, 128, side, side, generator=gen)
    norm_w, norm_b = torch.ones(128), torch.zeros(128)
    return {
        "conv": (2.0 * tokens * channels * channels * 9,
                 lambda: functional.conv2d(conv_x, conv_w, padding=1)),
        "linear": (2.0 * tokens * channels * 4 * channels,
                   lambda: functional.linear(lin_x, lin_w)),
        "attention": (4.0 * heads * tokens * tokens * 40,
                      lambda: functional.scaled_dot_product_attention(q, k, v)),
        "norm": (float(norm_x.numel()),
                 lambda: functional.silu(functional.group_norm(norm_x, 32, norm_w, norm_b))),
    }


def measure_rates(precision: str, latent_side: int = 64, repeats: int = 3) -> dict[str, float]:
    """Each kernel's rate in `precision` ("float32", or "bfloat16" under CPU autocast, as the
    pipelines run): its work over the best of `repeats` timed calls after a warm-up. On one
    thread the time is the process's CPU time: what the kernel costs this CPU, not what other
    programs took from it meanwhile (the stage timings learn the usual load)."""
    import torch

    clock = time.process_time if torch.get_num_threads() == 1 else time.perf_counter
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bfloat16"
                else contextlib.nullcontext())
    rates = {}
    with torch.no_grad(), autocast:
        for name, (work, call) in kernel_cases(latent_side).items():
            call()
            best = math.inf
            for _ in range(repeats):
                start = clock()
                call()
                best = min(best, clock() - start)
            rates[name] = work / max(best, 1e-9)
    return rates


def calibrate(kind: str, precisions: tuple[str, ...], latent_side: int = 64,
              path: Path | None = None) -> Calibration:
    """Measure this machine in `precisions` (float32 always) and store it."""
    began = time.perf_counter()
    wanted = ("float32", *(p for p in precisions if p != "float32"))
    rates = {p: measure_rates(p, latent_side) for p in wanted}
    cal = Calibration(machine_key(kind), rates, round(time.perf_counter() - began, 2),
                      time.strftime("%Y-%m-%dT%H:%M:%S"))
    save_calibration(cal, path)
    return cal


def calibrate_device(plan: DevicePlan, path: Path | None = None) -> Calibration:
    """Measure this CPU in every precision its plans may use (the precision setting may
    change): float32, and bf16 where it has bf16 units."""
    kind = plan.cpu_kind or "avx2"
    return calibrate(kind, ("float32", "bfloat16") if kind in BF16_KINDS else ("float32",),
                     path=path)
