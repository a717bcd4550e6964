"""One job of a kind at a time on a project: an operating-system lock on a file in the
project folder (`.<name>.lock`), held while the job runs.

The lock belongs to an open file, so it holds across processes (the window's worker, two
command lines) and between threads of one process, and the system drops it when its holder
ends in any way: a killed build leaves no lock behind, only a file that the next holder
takes over. The file says who holds it, for the message the second job gets.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from engine.errors import ProjectError


def _try_lock(f: IO[bytes]) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _holder(path: Path) -> str:
    """ "process 1234, since 14:02:05", from what the holder wrote, or ""."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
        since = time.strftime("%H:%M:%S", time.localtime(float(info["since"])))
        return f"process {int(info['pid'])}, since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


@contextlib.contextmanager
def exclusive(root: str | os.PathLike[str], name: str, what: str) -> Iterator[None]:
    """Run the block as the only `name` job on the project at `root`; while another holds
    it, fail at once with ProjectError("Cannot start: another <what> is running on this
    project ...")."""
    path = Path(root) / f".{name}.lock"
    try:
        f = open(path, "a+b")  # noqa: SIM115 - closed below, which also drops the lock
    except OSError as exc:
        raise ProjectError(f"Could not open {path}: {exc.strerror or exc}") from exc
    try:
        f.seek(0)  # Windows locks a byte range from here: the same byte for everyone
        if not _try_lock(f):
            who = _holder(path)
            raise ProjectError(f"Cannot start: another {what} is running on this project"
                               f"{f' ({who})' if who else ''}; wait for it to finish, or "
                               "cancel it")
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "since": time.time()}).encode())
        f.flush()
        yield
    finally:
        f.close()
