"""The Dataset step: a build on the tiny profile runs as a job with progress and its items land
in the review grid while the window stays responsive; accept/reject by click and by key;
what the filter rejected is dimmed with its reason; a cancel mid-build leaves a sound
project that the grid shows as it is."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest

from desktop_app.widgets.dataset_review import ITEM_SIDE, button_rects
from engine.atomic import TEMP_MARK
from engine.jobs import JobProgress
from engine.project import DatasetItem, Project

from dataset_project import make_dataset_project  # isort: skip
from qt_helpers import wait_for_jobs  # isort: skip


class StallProbe(QObject):
    """The longest gap between ticks of a 10 ms timer: how long the event loop was blocked."""

    def __init__(self) -> None:
        super().__init__()
        self.timer = QTimer(self)
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.worst = 0.0

    def start(self) -> None:
        self.last = time.perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self.last - 0.010)
        self.last = now

    def stop(self) -> None:
        self.timer.stop()


def sound_items(folder: Path) -> list[DatasetItem]:
    with Project.open(folder) as project:
        items = project.dataset_items()
        for item in items:
            for rel in (item.image_file, *item.masks.values()):
                assert project.sha256_of(rel) == Path(rel).stem
    assert not list(folder.rglob(f"*{TEMP_MARK}*"))
    return items


def test_build_from_the_window_lands_in_the_review_grid(make_window, qtbot, tmp_path):
    window = make_window(make_dataset_project(tmp_path / "p"))
    page = window.dataset_page
    window.steps.setCurrentWidget(page)
    assert page.build_button.isEnabled() and page.counts.text() == "No dataset items yet."
    page.count.setValue(3)
    page.steps.setValue(2)
    progress: list[JobProgress] = []
    window.jobs.event.connect(lambda e: isinstance(e, JobProgress) and progress.append(e))
    probe = StallProbe()
    probe.start()
    qtbot.mouseClick(page.build_button, Qt.MouseButton.LeftButton)
    assert page.cancel_button.isEnabled() and not page.build_button.isEnabled()
    qtbot.waitUntil(lambda: page.model.rowCount() == 3, timeout=240_000)
    wait_for_jobs(qtbot, window)
    probe.stop()
    assert "Done: 3 built now" in page.status.text()
    assert page.counts.text().startswith("3 items:")
    job_row = window.jobs_panel.rows[progress[-1].job_id]
    assert job_row.state.text() == "done" and not job_row.preview.pixmap().isNull()
    assert progress[-1].step == progress[-1].total and len(progress) > 3
    assert probe.worst < 1.0, f"the event loop stalled for {probe.worst:.3f} s"
    assert [i.build_index for i in sound_items(window.project.root)] == [0, 1, 2]
    qtbot.waitUntil(lambda: page.model.index(2).data(Qt.ItemDataRole.DecorationRole)
                    is not None, timeout=30_000)

    # Review: the ✓ of the first cell, then R on the second.
    grid = page.grid
    accept, _reject = button_rects(grid.visualRect(page.model.index(0)).adjusted(4, 4, -4, -4))
    QTest.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=accept.center())
    grid.setCurrentIndex(page.model.index(1))
    QTest.keyClick(grid, Qt.Key.Key_R)
    with Project.open(window.project.root) as project:
        states = [i.review_state for i in project.dataset_items()]
    assert states[:2] == ["accepted", "rejected"]
    assert "1 accepted" in page.counts.text() and "1 rejected by you" in page.counts.text()
    page.show_combo.setCurrentIndex(2)  # only rejected
    assert page.model.rowCount() == 1
    page.show_combo.setCurrentIndex(0)


def test_rejected_items_are_dimmed_with_their_reason(make_window, qtbot, tmp_path):
    folder = make_dataset_project(tmp_path / "p")
    with Project.open(folder) as project:
        image = project.masks()[1].cutout_file
        mask = {1: project.masks()[1].file}
        project.add_dataset_item(DatasetItem(image_file=image, caption="kept", masks=mask))
        project.add_dataset_item(DatasetItem(
            image_file=image, caption="bad", masks=mask, review_state="auto-rejected",
            reasons="the cat changed where it was pasted"))
    window = make_window(folder)
    page = window.dataset_page
    window.steps.setCurrentWidget(page)
    model = page.model
    assert "the cat changed" in model.index(1).data(Qt.ItemDataRole.ToolTipRole)
    qtbot.waitUntil(lambda: model.index(1).data(Qt.ItemDataRole.DecorationRole) is not None,
                    timeout=30_000)
    shot = page.grid.viewport().grab().toImage()

    def contrast(row: int) -> float:
        rect = page.grid.visualRect(model.index(row))
        values = [QColor(shot.pixel(rect.left() + 8 + x, rect.top() + 8 + y)).lightness()
                  for x in range(0, ITEM_SIDE - 8, 4) for y in range(0, ITEM_SIDE - 8, 4)]
        mean = sum(values) / len(values)
        return sum((v - mean) ** 2 for v in values) / len(values)

    assert contrast(1) < 0.5 * contrast(0)  # the rejected picture is faded
    assert "1 rejected by the filter" in page.counts.text()


def test_cancel_mid_build_leaves_the_project_consistent(make_window, qtbot, tmp_path):
    window = make_window(make_dataset_project(tmp_path / "p"))
    page = window.dataset_page
    page.count.setValue(8)
    page.steps.setValue(4)
    page.build()
    qtbot.waitUntil(lambda: page.model.rowCount() >= 1, timeout=240_000)
    qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    wait_for_jobs(qtbot, window)
    assert page.status.text().startswith("Cancelled")
    items = sound_items(window.project.root)
    assert 1 <= len(items) < 8
    assert [i.build_index for i in items] == list(range(len(items)))
    assert page.model.rowCount() == len(items) and page.build_button.isEnabled()
