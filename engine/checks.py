"""Checks of numbers read from settings, configs and command lines: one wording everywhere.

Both raise InputError naming the field, the range and the value given; bools are refused
(True is an int to Python, never a step count to a user).
"""

from __future__ import annotations

import math
from typing import Any

from engine.errors import InputError


def check_whole(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high}, got {value!r}")


def check_number(name: str, value: Any, low: float, high: float,
                 low_open: bool = False) -> None:
    """A finite number in [low, high] (in (low, high] with `low_open`)."""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value) and low <= value <= high and not (low_open and value == low))
    if not ok:
        bracket = "(" if low_open else "["
        raise InputError(f"{name} must be a number in {bracket}{low:g}, {high:g}], got {value!r}")
