"""The window and the worker share a project: reopening it loses nothing, quitting during a
job asks first and the next open offers to resume it, a damaged project is offered a repair.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from engine.jobs import JobFinished, register_job
from engine.project import Project

from dataset_project import make_dataset_project  # isort: skip
from qt_helpers import wait_for_jobs  # isort: skip


def meta_keys(folder: Path) -> set[str]:
    conn = sqlite3.connect(folder / "catalogue.sqlite")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {r[0] for r in conn.execute("SELECT key FROM meta")}
    finally:
        conn.close()


def deleted_catalogue_descriptors() -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "catalogue" in target and "(deleted)" in target:
            found.append(target)
    return found


def test_reopening_every_second_while_the_worker_writes_for_30_s(make_window, qtbot, tmp_path):
    """The stress test of the data-loss issue: the window writes and reopens its project
    through its own code path (Project › Open recent) every second while a worker job
    writes to the same catalogue for 30 s."""
    folder = tmp_path / "shared"
    Project.create(folder, "shared").close()
    window = make_window(folder)
    register_job("meta-writer", "tests.jobs_for_tests:meta_writer_job")
    handle = window.jobs.submit("meta-writer", {"project": str(folder), "seconds": 30.0},
                                "Write for 30 s")
    written: list[str] = []
    reopened = [0]

    def gui_write() -> None:
        key = f"g{len(written)}"
        window.project.set_meta(key, "v")
        written.append(key)

    def reopen() -> None:
        window.open_project(folder)  # the window's own path, as the menu does it
        reopened[0] += 1

    writes, reopens = QTimer(), QTimer()
    writes.timeout.connect(gui_write)
    reopens.timeout.connect(reopen)
    writes.start(100)
    reopens.start(1000)
    try:
        qtbot.waitUntil(lambda: handle.done, timeout=120_000)
    finally:
        writes.stop()
        reopens.stop()
    end = handle.outcome
    assert isinstance(end, JobFinished), end
    assert reopened[0] >= 25 and len(written) >= 100 and end.result >= 100
    assert not deleted_catalogue_descriptors()
    window.close()
    keys = meta_keys(folder)
    assert {f"w{i}" for i in range(end.result)} <= keys, "a write of the worker was lost"
    assert set(written) <= keys, "a write of the window was lost"


def test_quit_during_a_build_asks_and_the_next_open_offers_to_resume(
        make_window, qtbot, tmp_path, quit_without_asking):
    folder = make_dataset_project(tmp_path / "p")
    window = make_window(folder)
    page = window.dataset_page
    page.count.setValue(4)
    page.steps.setValue(2)
    page.build()
    qtbot.waitUntil(lambda: page.model.rowCount() >= 1, timeout=240_000)
    window.close()
    assert quit_without_asking and "Build" in quit_without_asking[0][0]
    with Project.open(folder) as project:
        built = len(project.dataset_items())
        [entry] = project.interrupted_jobs()
    assert entry.name == "build-dataset" and 1 <= built < 4

    again = make_window(folder)
    bar = again.resume_bar
    assert bar.isVisible() and "was interrupted" in bar.label.text()
    assert bar.resume_button.isVisible()
    bar.resume_button.click()
    assert not bar.isVisible()
    wait_for_jobs(qtbot, again)
    with Project.open(folder) as project:
        assert [i.build_index for i in project.dataset_items()] == [0, 1, 2, 3]
        assert project.interrupted_jobs() == []
        assert project.journal()[0].state == "finished"
    qtbot.waitUntil(lambda: again.dataset_page.model.rowCount() == 4, timeout=10_000)


def test_closing_without_jobs_asks_nothing_and_dismiss_forgets(make_window, tmp_path,
                                                              quit_without_asking):
    folder = tmp_path / "p"
    with Project.create(folder, "p") as project:
        project.journal_started("abc", "segment", "Segment photos", {"project": str(folder)})
        project.journal_ended("abc", "interrupted", "The app was closed during it")
    window = make_window(folder)
    assert window.resume_bar.isVisible() and "Segment photos" in window.resume_bar.label.text()
    window.resume_bar.dismiss_button.click()
    assert not window.resume_bar.isVisible()
    window.close()
    assert quit_without_asking == []
    with Project.open(folder) as project:
        assert project.interrupted_jobs() == [] and project.journal()[0].state == "dismissed"


def test_a_quit_can_be_refused(make_window, qtbot, tmp_path, monkeypatch):
    from desktop_app.main_window import MainWindow

    folder = tmp_path / "shared"
    Project.create(folder, "shared").close()
    window = make_window(folder)
    register_job("meta-writer", "tests.jobs_for_tests:meta_writer_job")
    handle = window.jobs.submit("meta-writer", {"project": str(folder), "seconds": 2.0},
                                "Write for 2 s")
    monkeypatch.setattr(MainWindow, "ask_before_quit", lambda self, titles: False)
    assert not window.close() and window.isVisible()
    qtbot.waitUntil(lambda: handle.done, timeout=60_000)
    assert isinstance(handle.outcome, JobFinished)


def test_a_damaged_project_is_offered_a_repair(make_window, qtbot, tmp_path, monkeypatch):
    folder = tmp_path / "p"
    with Project.create(folder, "p") as project:
        project.add_concept("Mochi", "cat")
    catalogue = folder / "catalogue.sqlite"
    with open(catalogue, "r+b") as f:  # lose the last page
        f.truncate(catalogue.stat().st_size - 4096)
    asked, told = [], []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    monkeypatch.setattr(QMessageBox, "information", lambda *a, **k: told.append(a[2]))
    window = make_window()
    window.open_project(folder)
    assert asked and "is damaged" in asked[0] and "Repair it?" in asked[0]
    qtbot.waitUntil(lambda: window.project is not None, timeout=120_000)
    assert told and "Recovered:" in told[0]
    assert list(folder.glob("catalogue.damaged-*.sqlite"))
