"""The main window opens offscreen, shows the profile, learns the device from the worker,
opens a project and reports a bad one without crashing; it appears before torch is imported;
a bad settings file is backed up and said so."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desktop_app.main_window import MainWindow
from engine.jobs import JobFinished
from engine.project import Project
from engine.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def window(qtbot):
    win = MainWindow(Settings(profile="tiny", device="cpu"))
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


def test_window_shows_profile_and_device_from_worker(window, qtbot):
    assert window.windowTitle() == "MyCanvas Studio"
    assert "TEST MODELS" in window.profile_label.text()
    qtbot.waitUntil(lambda: window.device_label.text().startswith("device: cpu"), timeout=60000)
    # The label stays short (status messages need the room); the tooltip has it all.
    assert len(window.device_label.text()) < 30, window.device_label.text()
    assert "savers" in window.device_label.toolTip()
    row = window.jobs_panel.rows[window._device_job.job_id]
    assert row.state.text() == "done"
    assert isinstance(window._device_job.outcome, JobFinished)
    assert window.job_label.text() == "no job running"
    # Every step is offered, in the pipeline's order (Extract beside Train).
    assert [window.steps.tabText(i) for i in range(window.steps.count())] == [
        "1. Concepts", "2. Layouts", "3. Dataset", "4. Train", "4b. Extract", "5. Generate",
        "6. Gallery"]
    assert all(window.steps.isTabEnabled(i) for i in range(window.steps.count()))


def test_open_project_sets_title_and_lists_concepts(window, tmp_path):
    folder = tmp_path / "Garden"
    with Project.create(folder, "Garden") as project:
        project.add_concept("Mochi", "cat")
    window.open_project(folder)
    assert window.windowTitle() == "Garden — MyCanvas Studio"
    assert window.concepts.count() == 1 and "<mochi>" in window.concepts.item(0).text()
    assert window.settings.recent_projects[0] == str(folder.resolve())
    assert [a.text() for a in window.recent_menu.actions()] == [str(folder.resolve())]


def test_bad_project_shows_message_not_crash(window, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("desktop_app.main_window.QMessageBox.warning",
                        lambda *a: shown.append(a[2]))
    window.open_project(tmp_path)
    assert shown and "not a MyCanvas project" in shown[0]
    assert window.project is None and window.windowTitle() == "MyCanvas Studio"


def test_bad_settings_file_is_backed_up_and_reported(qtbot):
    config = Path(os.environ["MYCANVAS_CONFIG_DIR"])
    (config / "settings.json").write_text("{ this is not json")
    win = MainWindow()
    qtbot.addWidget(win)
    try:
        assert "moved it to" in win.statusBar().currentMessage()
        assert list(config.glob("settings.json.bad-*"))
        assert win.settings == Settings()
    finally:
        win.close()


def test_window_appears_before_torch_is_imported(tmp_path):
    probe = ("import sys\n"
             "from PySide6.QtWidgets import QApplication\n"
             "from desktop_app.main_window import MainWindow\n"
             "app = QApplication([])\n"
             "w = MainWindow()\n"
             "w.show()\n"
             "app.processEvents()\n"
             "print(sorted(m for m in ('torch', 'numpy', 'PIL', 'diffusers', 'huggingface_hub')"
             " if m in sys.modules))\n"
             "w.close()\n")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_startup_probe_reports_the_window_and_exits():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "MYCANVAS_STARTUP_PROBE": "exit"}
    started = time.time()
    out = subprocess.run([sys.executable, "-m", "desktop_app.launcher"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    shown = [line for line in out.stdout.splitlines() if line.startswith("window-shown ")]
    assert shown and started < float(shown[0].split()[1]) < time.time()
    assert "Traceback" not in out.stderr


def test_void_qt_calls_cannot_use_up_none(qapp):
    """PySide6 6.12.0 on Python 3.11 takes a reference from None on every void call; the
    window guards against it (desktop_app.qt_compat), or a busy window aborts in minutes."""
    from PySide6.QtWidgets import QLabel

    from desktop_app.qt_compat import binding_leaks_none, guard_none_refcount

    leaks = binding_leaks_none()
    guarded = guard_none_refcount()
    if sys.version_info >= (3, 12):
        assert not guarded  # None is immortal there: nothing to guard
        return
    # The guard is in place exactly when this binding needs it.
    assert guarded is leaks
    label = QLabel()
    before = sys.getrefcount(None)
    for _ in range(20_000):
        label.setText("x")
    if leaks:
        assert sys.getrefcount(None) > 1 << 39  # the reserve outlasts years of calls
    else:
        # The installed binding (pyproject excludes 6.12.0) keeps None's count steady.
        assert abs(sys.getrefcount(None) - before) < 1_000


@pytest.mark.parametrize(("described", "short"), [
    ("cpu (float32 weights, bfloat16 compute on avx512_bf16+amx_bf16, 15.0 GiB free; savers: "
     "none)", "cpu, bf16 compute"),
    ("cpu (float32: no bf16 units on this CPU, 3.0 GiB free; savers: attention slicing)",
     "cpu, float32"),
    ("cuda (float16, 7.5 GiB free; savers: none)", "cuda, float16"),
    ("detecting…", "detecting…"),
])
def test_the_device_label_says_device_and_precision(described, short):
    from desktop_app.main_window import short_device

    assert short_device(described) == short
