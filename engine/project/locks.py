"""One owner at a time: an operating-system lock on a file, held by the process doing the
work for as long as it works (a dataset build, Personalize: `.<name>.lock` in the project
folder; a training or extraction run: `runs/<id>/.owner.lock`).

The lock belongs to an open file, so it holds across processes (the window's worker, two
command lines) and between threads of one process, and the system drops it when its holder
ends in any way: a killed job leaves no lock behind, only a file that the next holder takes
over. The file says who holds it (pid, program, what it does, since when), for the message
the second one gets.
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

_program = {"name": Path(sys.argv[0] if sys.argv and sys.argv[0] else "python").name}


def set_program(name: str) -> None:
    """How this process is named to a second owner ("the app's worker", "mycanvas train")."""
    _program["name"] = name


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
    """ "process 1234 (mycanvas train), training run 4 since 14:02:05", from what the holder
    wrote, or "" when it wrote nothing readable."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
        since = time.strftime("%H:%M:%S", time.localtime(float(info["since"])))
        program = f" ({info['program']})" if info.get("program") else ""
        doing = f", {info['doing']}" if info.get("doing") else ""
        return f"process {int(info['pid'])}{program}{doing} since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _open(path: Path) -> IO[bytes]:
    try:
        return open(path, "a+b")
    except OSError as exc:
        raise ProjectError(f"Could not open {path}: {exc.strerror or exc}") from exc


def holder_of(path: str | os.PathLike[str]) -> str | None:
    """Who holds the lock at `path` ("process 1234 (...), doing X since T"), or None when
    nobody does (or there is no such file)."""
    path = Path(path)
    if not path.is_file():
        return None
    f = _open(path)
    try:
        f.seek(0)
        if _try_lock(f):
            return None
        return _holder(path) or "another process"
    finally:
        f.close()  # also drops the lock this look took


@contextlib.contextmanager
def held(path: str | os.PathLike[str], doing: str, refused: str) -> Iterator[None]:
    """Hold the lock at `path` while the block runs, noting `doing` ("training run 4") for
    others. While another process holds it, fail at once with ProjectError: `refused` with
    "{holder}" replaced by who holds it."""
    path = Path(path)
    f = _open(path)
    try:
        f.seek(0)  # Windows locks a byte range from here: the same byte for everyone
        if not _try_lock(f):
            raise ProjectError(refused.replace("{holder}", _holder(path) or "another process"))
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "since": time.time(),
                            "program": _program["name"], "doing": doing}).encode())
        f.flush()
        yield
    finally:
        f.close()


def _busy(what: str, holder: str) -> str:
    return (f"Cannot start: another {what} is running on this project ({holder}); wait for "
            "it to finish, or cancel it")


@contextlib.contextmanager
def exclusive(root: str | os.PathLike[str], name: str, what: str,
              doing: str = "") -> Iterator[None]:
    """Run the block as the only `name` job on the project at `root`; while another holds
    it, fail at once with ProjectError("Cannot start: another <what> is running on this
    project (process N (program), doing since T); ...")."""
    with held(Path(root) / f".{name}.lock", doing or f"running {what}", _busy(what, "{holder}")):
        yield


def exclusive_refusal(root: str | os.PathLike[str], name: str, what: str) -> str | None:
    """What `exclusive(root, name, what)` would refuse with now, or None if it is free."""
    holder = holder_of(Path(root) / f".{name}.lock")
    return None if holder is None else _busy(what, holder)
