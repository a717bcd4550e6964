"""Writes that cannot tear: an interrupted write keeps the old file and leaves no temp."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.atomic import (
    TEMP_MARK,
    atomic_copy,
    atomic_write_bytes,
    atomic_writer,
    cleanup_temp_files,
)

ORIGINAL = b"original content\n" * 100
NEW = b"N" * 10_000


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(f"*{TEMP_MARK}*") if p.is_file()]


def test_atomic_write_replaces_content(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, ORIGINAL)
    atomic_write_bytes(target, NEW)
    assert target.read_bytes() == NEW
    assert _temps(tmp_path) == []


def test_exception_mid_write_keeps_original_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(ORIGINAL)
    with pytest.raises(RuntimeError, match="boom"), atomic_writer(target) as f:
        f.write(NEW[: len(NEW) // 2])
        raise RuntimeError("boom")
    assert target.read_bytes() == ORIGINAL
    assert _temps(tmp_path) == []


def test_exception_on_new_file_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new.bin"
    with pytest.raises(KeyboardInterrupt), atomic_writer(target) as f:
        f.write(b"half")
        raise KeyboardInterrupt
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def _kill_mid_write(target: Path, repo_root: Path) -> None:
    """A child process opens atomic_writer, writes half, and dies without cleaning up."""
    code = textwrap.dedent(
        f"""
        import os, sys
        from engine.atomic import atomic_writer
        with atomic_writer({str(target)!r}) as f:
            f.write({NEW[: len(NEW) // 2]!r})
            f.flush()
            os._exit(1)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, timeout=60,
                            capture_output=True)
    assert result.returncode == 1, result.stderr.decode(errors="replace")


def test_killed_writer_keeps_original_and_cleanup_removes_temp(
    tmp_path: Path, repo_root: Path
) -> None:
    target = tmp_path / "deep" / "f.bin"
    target.parent.mkdir()
    target.write_bytes(ORIGINAL)
    _kill_mid_write(target, repo_root)
    assert target.read_bytes() == ORIGINAL
    stale = _temps(tmp_path)
    assert len(stale) == 1 and stale[0].stat().st_size == len(NEW) // 2
    assert cleanup_temp_files(tmp_path) == 1
    assert _temps(tmp_path) == []
    assert target.read_bytes() == ORIGINAL


def test_killed_writer_inside_project_is_cleaned_by_open(
    tmp_path: Path, repo_root: Path
) -> None:
    from engine.project import Project

    folder = tmp_path / "proj"
    with Project.create(folder, "p") as project:
        rel = project.put_bytes(ORIGINAL, "txt")
        target = project.abspath(rel)
    _kill_mid_write(target, repo_root)
    assert len(_temps(folder)) == 1
    with Project.open(folder) as project:
        assert _temps(folder) == []
        assert project.abspath(rel).read_bytes() == ORIGINAL
        assert project.sha256_of(rel) == rel.rsplit("/", 1)[1].split(".")[0]


def test_atomic_copy(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20))
    atomic_copy(src, tmp_path / "dst.bin")
    assert (tmp_path / "dst.bin").read_bytes() == src.read_bytes()
    assert _temps(tmp_path) == []


def test_cleanup_keeps_temp_file_of_a_live_writer(tmp_path):
    # The GUI and the worker share a project: opening it must not break a write in progress.
    target = tmp_path / "item.bin"
    with atomic_writer(target) as f:
        f.write(b"half")
        assert cleanup_temp_files(tmp_path) == 0
        f.write(b" and the rest")
    assert target.read_bytes() == b"half and the rest"


def test_safe_component_refuses_reserved_names_with_extensions():
    from engine.paths import safe_component

    assert safe_component("nul.txt") == "item"
    assert safe_component("CON") == "item"
    assert safe_component("console") == "console"
