"""Writes that cannot tear: temp file in the same folder, fsync, os.replace, fsync folder.

A reader sees either the old file or the complete new one, never a half-written file, even
if the process is killed in the middle of a write.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_MARK = ".tmp-"


def fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform lets a folder be opened.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a finished file to disk before it is renamed into place."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(src: Path, dst: Path) -> None:
    """os.replace, then fsync the folder so the rename survives a power cut."""
    os.replace(src, dst)
    fsync_dir(dst.parent)


def temp_path_for(path: Path) -> Path:
    """A unique temp name beside `path`, recognisable by cleanup_temp_files."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a binary temp file; on a clean exit it replaces `path` atomically.

    If the block raises, the temp file is removed and `path` keeps its old content.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    f = open(tmp, "xb")  # noqa: SIM115 - closed in both branches below
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        replace_durably(tmp, target)
    except BaseException:
        f.close()
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    with open(src, "rb") as s, atomic_writer(dst) as d:
        while chunk := s.read(1 << 20):
            d.write(chunk)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` still runs: decides if a writer's temp file may be removed."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _writer_alive(temp: Path) -> bool:
    """True when the process that owns `temp` (its pid is in the name) is still running."""
    try:
        pid = int(temp.name.rsplit(TEMP_MARK, 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return False
    return pid_alive(pid)


def cleanup_temp_files(folder: str | os.PathLike[str]) -> int:
    """Remove temp files left by writers that were killed; returns how many were removed.

    A temp file whose writer is still alive (the GUI and the worker share a project) is kept.
    """
    removed = 0
    root = Path(folder)
    if not root.is_dir():
        return 0
    for p in root.rglob(f".*{TEMP_MARK}*"):
        if p.is_file() and not _writer_alive(p):
            with contextlib.suppress(OSError):
                p.unlink()
                removed += 1
    return removed
