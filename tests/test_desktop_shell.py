"""The main window opens offscreen, shows the profile, learns the device from the worker,
opens a project and reports a bad one without crashing."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from desktop_app.app import MainWindow
from engine.jobs import JobFinished
from engine.project import Project
from engine.settings import Settings


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
    row = window.jobs_panel.rows[window._device_job.job_id]
    assert row.state.text() == "done"
    assert isinstance(window._device_job.outcome, JobFinished)


def test_open_project_sets_title_and_lists_concepts(window, tmp_path):
    folder = tmp_path / "Garden"
    with Project.create(folder, "Garden") as project:
        project.add_concept("Mochi", "cat")
    window.open_project(folder)
    assert window.windowTitle() == "Garden — MyCanvas Studio"
    assert window.concepts.count() == 1 and "<mochi>" in window.concepts.item(0).text()
    assert window.settings.recent_projects[0] == str(folder.resolve())


def test_bad_project_shows_message_not_crash(window, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr("desktop_app.app.QMessageBox.warning",
                        lambda *a: shown.append(a[2]))
    window.open_project(tmp_path)
    assert shown and "not a MyCanvas project" in shown[0]
    assert window.project is None and window.windowTitle() == "MyCanvas Studio"
