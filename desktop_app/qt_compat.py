"""A guard against a reference-counting bug of PySide6 6.12.0 on Python 3.11.

There, every Qt method that returns nothing (QLabel.setText, QTimer.start, QPainter.drawRect,
QCoreApplication.processEvents, ...) hands Python back `None` without a reference of its own,
so each call takes one reference from `None`. A process starts with a few thousand; once they
are spent Python aborts with "Fatal Python error: none_dealloc" — after a few minutes of use
(measured: 5,000 `setText` calls in a bare process). PySide6 6.11.3 does not do this, and
Python 3.12 made `None` immortal, which hides it.

`guard_none_refcount` measures whether the installed binding has the bug and, only then,
gives `None` a reserve of references as large as an immortal object's (`None` is a static
object that is never freed, so the reserve changes nothing else). The lasting fix is not to
install PySide6 6.12.0 on Python 3.11.
"""

from __future__ import annotations

import ctypes
import sys

_RESERVE = 1 << 40  # ~10^12 calls: years of a busy window
_guarded = False


def binding_leaks_none(calls: int = 256) -> bool:
    """Whether a void Qt call takes a reference from None (checked on a throwaway QObject)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(calls):
        probe.setObjectName("probe")
    return before - sys.getrefcount(None) >= calls // 2


def guard_none_refcount() -> bool:
    """Apply the guard once if this binding needs it; True if it is in place."""
    global _guarded
    if _guarded or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _guarded
    if binding_leaks_none():
        # ob_refcnt is the first field of every CPython object; id() is its address.
        ctypes.c_ssize_t.from_address(id(None)).value += _RESERVE
        _guarded = True
    return _guarded
