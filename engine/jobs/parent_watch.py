"""The worker dies with the process that started it (the window).

Two guards, because either alone has a gap:

* Linux: the kernel's parent-death signal (prctl PR_SET_PDEATHSIG, through ctypes), SIGKILL
  the moment the parent ends. It is tied to the parent's *thread* that started us, so the
  caller asks for it only when that thread lives as long as the parent's runner.
* Everywhere: a watchdog thread that waits on the parent's sentinel (multiprocessing hands
  every spawned child one: a pipe that reads end-of-file, or on Windows a process handle
  that signals, when the parent is gone) and then ends this process at once.

Ending at once is safe here: every file a job writes is atomic, a run's last complete
checkpoint is what a resume starts from, and the operating system drops the locks we hold.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
from multiprocessing.connection import wait

PR_SET_PDEATHSIG = 1
EXIT_ORPHANED = 75  # what a worker whose parent died exits with (the watchdog's way)


def _set_parent_death_signal() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch(sentinel: int) -> None:
    with contextlib.suppress(OSError, ValueError):
        wait([sentinel])
    os._exit(EXIT_ORPHANED)


def die_with_parent(parent_pid: int, death_signal: bool) -> None:
    """Make this (spawned) process end when its parent `parent_pid` ends, however it ends."""
    if death_signal and _set_parent_death_signal() and os.getppid() != parent_pid:
        os._exit(EXIT_ORPHANED)  # the parent died before the signal was asked for
    parent = mp.parent_process()
    if parent is None or parent.sentinel is None:
        return
    threading.Thread(target=_watch, args=(parent.sentinel,), name="mycanvas-parent-watch",
                     daemon=True).start()
