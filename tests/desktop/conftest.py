"""Fixtures of the desktop tests: a leak check for Qt timers and threads (napari style), the
scikit-image photos as files, and windows on the tiny profile."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

import shiboken6
from PySide6.QtCore import QEvent, QObject, QThread, QThreadPool, QTimer
from PySide6.QtWidgets import QApplication

from engine.settings import Settings


@pytest.fixture(scope="session", autouse=True)
def pyside_none_guard(qapp) -> None:
    """pytest-qt's waits call Qt in loops: guard before the first test (see qt_compat)."""
    from desktop_app.qt_compat import guard_none_refcount

    guard_none_refcount()


@pytest.fixture(autouse=True)
def qt_leak_check(qapp, monkeypatch) -> Iterator[None]:
    """Fail a test that leaves a QTimer running, a single-shot timer pending, a QThread
    running or a thread pool busy once its windows are closed.

    Autouse, so it is set up before (and torn down after) the test's own fixtures and qtbot,
    which close the windows."""
    timers: list[QTimer] = []
    threads: list[QThread] = []
    pools: list[QThreadPool] = []
    pending: dict[int, tuple[object, str]] = {}
    start_timer, start_thread, start_pool = QTimer.start, QThread.start, QThreadPool.start
    single_shot = QTimer.singleShot

    def timer_start(self, *args):
        timers.append(self)
        return start_timer(self, *args)

    def thread_start(self, *args):
        threads.append(self)
        return start_thread(self, *args)

    def pool_start(self, *args):
        pools.append(self)
        return start_pool(self, *args)

    def tracked_single_shot(*args):
        *head, fn = args
        if not callable(fn):
            return single_shot(*args)
        key = id(fn)
        context = next((a for a in head if isinstance(a, QObject)), None)
        pending[key] = (context, getattr(fn, "__qualname__", repr(fn)))

        def fire(*a):
            pending.pop(key, None)
            return fn(*a)

        return single_shot(*head, fire)

    monkeypatch.setattr(QTimer, "start", timer_start)
    monkeypatch.setattr(QThread, "start", thread_start)
    monkeypatch.setattr(QThreadPool, "start", pool_start)
    monkeypatch.setattr(QTimer, "singleShot", staticmethod(tracked_single_shot))
    yield
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QApplication.processEvents()
    deadline = time.monotonic() + 1.0
    while pending and time.monotonic() < deadline:  # give due single shots their turn
        QApplication.processEvents()
        for key, (context, _name) in list(pending.items()):
            if context is not None and not shiboken6.isValid(context):
                pending.pop(key)  # its receiver is gone: Qt dropped it
    leaks = [f"QTimer {t.objectName() or t} still active" for t in timers
             if shiboken6.isValid(t) and t.isActive()]
    leaks += [f"single-shot {name} never fired" for _c, name in pending.values()]
    leaks += [f"QThread {t} still running" for t in threads
              if shiboken6.isValid(t) and t.isRunning()]
    leaks += [f"thread pool {p} still busy" for p in set(pools)
              if shiboken6.isValid(p) and p.activeThreadCount()]
    assert not leaks, "test leaked Qt timers/threads: " + "; ".join(leaks)


@pytest.fixture(autouse=True)
def quit_without_asking(monkeypatch) -> list[list[str]]:
    """Closing a window during a job asks first (a modal box would hang offscreen): tests
    answer yes, and may look at what was asked."""
    from desktop_app.main_window import MainWindow

    asked: list[list[str]] = []

    def answer_yes(self, titles: list[str]) -> bool:
        asked.append(titles)
        return True

    monkeypatch.setattr(MainWindow, "ask_before_quit", answer_yes)
    return asked


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> dict[str, Path]:
    """The scikit-image sample photos as files a user would drop."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    cats = folder / "my cat photos"
    cats.mkdir()
    out = {"chelsea": cats / "chelsea.png", "chelsea-2": cats / "chelsea-2.jpg",
           "coffee": folder / "coffee.jpg", "rocket": folder / "rocket.jpg",
           "cats": cats}
    Image.fromarray(data.chelsea()).save(out["chelsea"])
    Image.fromarray(data.chelsea()[:, ::-1][20:, 30:].copy()).save(out["chelsea-2"],
                                                                    quality=90)
    Image.fromarray(data.coffee()).save(out["coffee"], quality=90)
    Image.fromarray(data.rocket()).save(out["rocket"], quality=90)
    return out


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory, photos) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    text = folder / "notes.jpg"
    text.write_text("not a photo at all")
    truncated = folder / "broken.png"
    truncated.write_bytes(photos["chelsea"].read_bytes()[:3000])
    return {"text": text, "truncated": truncated}


@pytest.fixture
def make_window(qtbot, tiny_models) -> Iterator[Callable[..., object]]:
    """Windows on the tiny profile; closed (worker stopped) before the leak check runs."""
    from desktop_app.main_window import MainWindow

    windows = []

    def make(project: Path | None = None, create: bool = False):
        win = MainWindow(Settings(profile="tiny", device="cpu"))
        qtbot.addWidget(win)
        win.show()
        qtbot.waitExposed(win)
        if project is not None:
            (win.create_project if create else win.open_project)(project)
        windows.append(win)
        return win

    yield make
    for win in windows:
        win.close()
