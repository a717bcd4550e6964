"""Content-addressed files of a project: `files/ab/<sha256>.<ext>`, written atomically.

The name is the hash of the bytes, so a file is never overwritten with different content
and storing the same bytes twice writes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

from engine.atomic import atomic_write_bytes, replace_durably, temp_path_for
from engine.errors import InputError, ProjectError
from engine.paths import resolve_inside

FILES_DIR = "files"
ALLOWED_EXTENSIONS = frozenset(
    {"png", "jpg", "jpeg", "webp", "bmp", "tiff", "tif", "gif", "avif", "heic", "heif", "json",
     "safetensors", "txt"}
)
_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


def normalise_ext(ext: str) -> str:
    """'.PNG' -> 'png'; anything outside the allow-list is refused."""
    clean = str(ext).strip().lstrip(".").lower()
    if clean not in ALLOWED_EXTENSIONS:
        allowed = ", ".join(sorted(ALLOWED_EXTENSIONS))
        raise InputError(f"File extension {ext!r} is not allowed (allowed: {allowed})")
    return clean


def check_relative(rel: str, field_name: str = "path") -> tuple[str, ...]:
    """The parts of a project-relative path; absolute paths and '..' are refused."""
    if not isinstance(rel, str) or not rel:
        raise InputError(f"{field_name} must be a non-empty relative path, got {rel!r}")
    if "\x00" in rel or "\\" in rel:
        raise InputError(f"{field_name} {rel!r} must use '/' and no control characters")
    if rel.startswith("/") or _DRIVE.match(rel) or Path(rel).is_absolute():
        raise InputError(f"{field_name} {rel!r} must be relative to the project folder")
    parts = tuple(rel.split("/"))
    if any(part in ("", ".", "..") for part in parts):
        raise InputError(f"{field_name} {rel!r} must not contain '..', '.' or empty parts")
    return parts


class FileStore:
    """The content-addressed files under `<project>/files/`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._resolved_root: Path | None = None  # resolved once: the gallery asks per row

    @staticmethod
    def rel_for(sha256: str, ext: str) -> str:
        return f"{FILES_DIR}/{sha256[:2]}/{sha256}.{ext}"

    def abspath(self, rel: str) -> Path:
        """Absolute path of a project-relative path; escaping the project is an InputError."""
        if self._resolved_root is None:
            self._resolved_root = self.root.resolve()
        return resolve_inside(self._resolved_root, *check_relative(rel), root_resolved=True)

    def _already_stored(self, target: Path, size: int) -> bool:
        # Writes are atomic, so a file with the hash name and the right size is complete.
        try:
            return target.is_file() and target.stat().st_size == size
        except OSError:
            return False

    def put_bytes(self, data: bytes, ext: str) -> str:
        """Store `data`; returns its relative path. The same bytes again write nothing."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InputError(f"File data must be bytes, got {type(data).__name__}")
        clean_ext = normalise_ext(ext)
        payload = bytes(data)
        rel = self.rel_for(hashlib.sha256(payload).hexdigest(), clean_ext)
        target = self.abspath(rel)
        if not self._already_stored(target, len(payload)):
            try:
                atomic_write_bytes(target, payload)
            except OSError as exc:
                raise ProjectError(f"Could not write {target}: {exc.strerror or exc}") from exc
        return rel

    def put_bytes_tracked(self, data: bytes, ext: str) -> tuple[str, bool]:
        """put_bytes, and whether this call created the file (it was not stored before)."""
        clean_ext = normalise_ext(ext)
        sha = hashlib.sha256(bytes(data)).hexdigest()
        existed = self.abspath(self.rel_for(sha, clean_ext)).exists()
        return self.put_bytes(data, clean_ext), not existed

    def put_file(self, src: str | os.PathLike[str], ext: str | None = None) -> str:
        """Copy a file in, hashing while copying (one read); returns its relative path."""
        src_path = Path(src)
        if ext is None:
            if not src_path.suffix:
                raise InputError(f"{src_path} has no file extension; give one explicitly")
            ext = src_path.suffix
        clean_ext = normalise_ext(ext)
        incoming_dir = self.root / FILES_DIR
        incoming_dir.mkdir(parents=True, exist_ok=True)
        # A temp name cleanup_temp_files recognises, in case this process is killed.
        tmp = temp_path_for(incoming_dir / "incoming")
        digest = hashlib.sha256()
        size = 0
        try:
            try:
                source = open(src_path, "rb")  # noqa: SIM115 - closed by the with below
            except FileNotFoundError as exc:
                raise InputError(f"{src_path} does not exist") from exc
            except IsADirectoryError as exc:
                raise InputError(f"{src_path} is a folder, not a file") from exc
            except PermissionError as exc:
                raise InputError(f"{src_path} cannot be read (permission denied)") from exc
            with source, open(tmp, "xb") as out:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            rel = self.rel_for(digest.hexdigest(), clean_ext)
            target = self.abspath(rel)
            if not self._already_stored(target, size):
                target.parent.mkdir(parents=True, exist_ok=True)
                replace_durably(tmp, target)
            return rel
        except OSError as exc:
            raise ProjectError(
                f"Could not copy {src_path} into {incoming_dir}: {exc.strerror or exc}"
            ) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def sha256_of(self, rel: str) -> str:
        path = self.abspath(rel)
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
        except FileNotFoundError as exc:
            raise ProjectError(f"File {rel} is missing from the project ({path})") from exc
        except OSError as exc:
            raise ProjectError(f"Could not read {path}: {exc.strerror or exc}") from exc
        return digest.hexdigest()
