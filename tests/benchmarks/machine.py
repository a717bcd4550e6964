"""What a benchmark row says about where it was measured, and the spread of its runs."""

from __future__ import annotations

import os
import statistics
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model") and value.strip():
                return value.strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def where() -> str:
    """CPU model, torch threads and cores: every comparison row carries it."""
    import torch

    return (f"{cpu_model()}, {torch.get_num_threads()} torch thread(s), {os.cpu_count()} "
            "cores shared with other work")


def spread(times: list[float]) -> str:
    return (f"min {min(times):.3g} s, median {statistics.median(times):.3g} s "
            f"over {len(times)} runs")
