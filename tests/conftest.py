"""Shared test set-up. Thread limits are set before anything imports torch: on 2 busy cores,
oversubscribed threads make torch 10-60x slower."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# huggingface_hub reads its cache location once, at import: one private cache per session.
os.environ["HF_HOME"] = __import__("tempfile").mkdtemp(prefix="mycanvas-hf-")

import threading
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_app_dirs(tmp_path_factory, monkeypatch):
    """Settings and the HF cache are per test; built models are shared across the session."""
    session_data = tmp_path_factory.getbasetemp() / "app-data"
    monkeypatch.setenv("MYCANVAS_DATA_DIR", str(session_data))
    monkeypatch.setenv("MYCANVAS_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
    yield


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves non-daemon threads running (they would hang the app's exit)."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t for t in threading.enumerate()
        if t not in before and t.is_alive() and not t.daemon
    ]
    for t in leaked:
        t.join(timeout=2.0)
    leaked = [t.name for t in leaked if t.is_alive()]
    assert not leaked, f"test leaked threads: {leaked}"


@pytest.fixture(autouse=True)
def no_plain_open_of_live_catalogue(monkeypatch):
    """Fail a test in which anything but SQLite opens a catalogue (or its -wal/-shm) that
    this process holds a live connection to: closing that descriptor would drop the
    connection's POSIX locks and let another process delete the live WAL (issue: data loss
    on reopen). Checked at open time, so the culprit is in the traceback."""
    import builtins
    import io

    from engine.project.catalogue import open_catalogues

    violations: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def live_catalogue(path) -> str | None:
        if isinstance(path, int):
            return None
        try:
            name = os.path.basename(os.fsdecode(path))
        except TypeError:
            return None
        if not name.startswith("catalogue.sqlite"):
            return None
        real = os.path.realpath(path)
        for cat in open_catalogues():
            base = os.path.realpath(cat)
            if real in (base, base + "-wal", base + "-shm", base + "-journal"):
                return real
        return None

    def guarded_open(file, *args, **kwargs):
        hit = live_catalogue(file)
        if hit:
            violations.append(hit)
            raise AssertionError(f"{hit} opened outside SQLite while a connection is live")
        return real_open(file, *args, **kwargs)

    def guarded_os_open(path, *args, **kwargs):
        hit = live_catalogue(path)
        if hit:
            violations.append(hit)
            raise AssertionError(f"{hit} opened outside SQLite while a connection is live")
        return real_os_open(path, *args, **kwargs)

    # Still pickles as "builtins.open" (the unsafe-pickle tests build payloads from it).
    guarded_open.__module__, guarded_open.__qualname__ = "builtins", "open"
    guarded_open.__name__ = "open"
    guarded_os_open.__module__, guarded_os_open.__qualname__ = "posix", "open"
    guarded_os_open.__name__ = "open"
    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    yield violations
    assert not violations, f"live catalogue opened outside SQLite: {violations}"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Role → folder of the tiny deterministic models, built once per session.

    Built where the session's app data folder keeps them (see isolated_app_dirs), so code that
    resolves the `tiny` profile finds them already built.
    """
    from engine.models.tiny import ensure_tiny_models

    root = tmp_path_factory.getbasetemp() / "app-data" / "models" / "tiny"
    return ensure_tiny_models(root=root)


@pytest.fixture(scope="session")
def rehearsal_hub() -> Path:
    """The rehearsal of the sd15 download (tests/hf_rehearsal.py), built once and kept on disk."""
    from hf_rehearsal import ensure_rehearsal

    return ensure_rehearsal()


@pytest.fixture
def sd15_cache(rehearsal_hub, monkeypatch):
    """The rehearsal as this test's Hugging Face cache."""
    from hf_rehearsal import using_rehearsal

    with using_rehearsal(rehearsal_hub, monkeypatch) as hub:
        yield hub
