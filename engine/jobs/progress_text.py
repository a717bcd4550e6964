"""A job's progress in words, one way for every front end: the CLI's line and the window's
labels (its pages, the jobs list, the status bar) are all made here.

    eta_text(32.4)                               -> "0:32 left"   ("estimating…" while unknown)
    progress_line(0.4, 32.4, "step 4/10")        -> "40% · 0:32 left · step 4/10"
    progress_line(0.4, 32.4, "", title="Train")  -> "Train: 40% · 0:32 left"
"""

from __future__ import annotations

from engine.jobs.context import format_eta

ESTIMATING = "estimating…"


def eta_text(seconds: float | None) -> str:
    """The time left as a person reads it."""
    return ESTIMATING if seconds is None else f"{format_eta(seconds)} left"


def progress_line(fraction: float, eta_seconds: float | None, message: str = "",
                  title: str = "") -> str:
    """One line for a running job: how far, the time left, what it does now."""
    parts = [f"{min(1.0, max(0.0, fraction)):.0%}", eta_text(eta_seconds)]
    if message:
        parts.append(message)
    line = " · ".join(parts)
    return f"{title}: {line}" if title else line
