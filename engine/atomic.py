"""Writes that cannot tear: temp file in the same folder, fsync, os.replace, fsync folder.

A reader sees either the old file or the complete new one, never a half-written file, even
if the process is killed in the middle of a write.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from engine.errors import DiskFullError, InputError

TEMP_MARK = ".tmp-"
# How libraries word a full disk when they do not raise OSError(ENOSPC) themselves
# (safetensors: "I/O error: No space left on device (os error 28)").
_DISK_FULL_TEXT = ("no space left on device", "os error 28", "disk quota exceeded",
                   "database or disk is full")


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


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, read in blocks (weights are gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


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


# --------------------------------------------------------------------------- a full disk


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc` (or an error it was raised from) says the disk is full. torch.save says
    something else entirely ("unexpected pos ..."): callers check the free space too."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(exc).lower() for text in _DISK_FULL_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Free space on the disk holding `path` (its nearest existing folder), or None."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def megabytes(n: int | None) -> str:
    if n is None:
        return "an unknown amount"
    return f"{n / 2**20:.1f} MB" if n < 10 * 2**20 else f"{n / 2**20:.0f} MB"


def disk_full_error(target: str | os.PathLike[str], needed: int | None, kept: str,
                    then: str = "") -> DiskFullError:
    """The error a person reads when `target` could not be written for lack of space:
    which file, how much it needs, how much is free, what was kept, what to do."""
    free = free_bytes(target)
    need = f"it needs about {megabytes(needed)}, " if needed else ""
    todo = f" Free some space, then {then}." if then else " Free some space and try again."
    return DiskFullError(f"No space left on the disk for {target} ({need}{megabytes(free)} "
                         f"free). {kept[:1].upper() + kept[1:]}.{todo}")


def ensure_free_space(target: str | os.PathLike[str], needed: int, kept: str,
                      then: str = "") -> None:
    """Refuse to start writing `needed` bytes at `target` when the disk has less free."""
    free = free_bytes(target)
    if free is not None and free < needed:
        raise disk_full_error(target, needed, kept, then)


# Errors that say where a file may not be written at all: never a matter of space.
NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def not_writable_reason(exc: BaseException) -> str | None:
    """What to tell a person when `exc` (or its cause) refused a write outright, else None."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno == errno.EROFS:
            return "it is on a read-only file system; choose a folder on a writable disk"
        if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
            return "writing there is not permitted; choose a folder you may write to"
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return None


def check_writable_folder(path: str | os.PathLike[str], what: str) -> Path:
    """`path` is (or can be made as) a folder this process may write to: the nearest existing
    folder is probed with a temp file. Returns the absolute path; InputError naming `what`."""
    target = Path(path).absolute()
    if target.exists() and not target.is_dir():
        raise InputError(f"{what} {target} is a file, not a folder; give a folder")
    folder = target
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{what} {target}: {folder} is a file, not a folder")
    probe = temp_path_for(folder / "write-test")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        why = not_writable_reason(exc) or (exc.strerror or str(exc)).lower()
        raise InputError(f"{what} {target} cannot be written: {why}") from exc
    with contextlib.suppress(OSError):
        probe.unlink()
    return target


def looks_like_disk_full(exc: BaseException, target: str | os.PathLike[str],
                         needed: int = 0) -> bool:
    """is_disk_full, or a write error with less free space left than the write needed (a
    read-only file system or a refused permission is never taken for a full disk)."""
    if is_disk_full(exc):
        return True
    if not_writable_reason(exc):
        return False
    if not isinstance(exc, (OSError, RuntimeError)) and type(exc).__name__ != "SafetensorError":
        return False
    free = free_bytes(target)
    return free is not None and free < max(needed, 1 << 20)
