"""Issue 12, item 7: dataset review has undo, a way back to the filter's verdict, a large view
(double-click), captions that end in an ellipsis when cut; pictures built with the test models
are marked and, on a real profile, left out of training unless the user includes them. (The
build's progress in plain words, "building picture 1 of 2", is checked in
test_desktop_follow_data.py, where a build runs.)"""

from __future__ import annotations

from dataclasses import replace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics
from PySide6.QtTest import QTest

from desktop_app.widgets.dataset_review import ITEM_SIDE, TEST_NOTE, caption_lines
from engine.errors import InputError
from engine.project import DatasetItem, Project

from dataset_project import make_dataset_project  # isort: skip
from qt_helpers import press_key  # isort: skip
from train_project import make_train_project  # isort: skip

LONG = ("<mochi> cat sits next to <cup> mug and a <rocket> rocket on a wooden table in a "
        "sunlit kitchen with plants, a window, a striped rug and a sleepy dog in the corner")


def review_project(folder):
    folder = make_dataset_project(folder)
    with Project.open(folder) as project:
        mask = project.masks()[1]
        for n, (profile, reasons, caption) in enumerate((
                ("tiny", "", "a cat on a table"),
                ("sd15", "the cat is mostly hidden (20% visible)", "a hidden cat"),
                ("tiny", "", LONG))):
            project.add_dataset_item(DatasetItem(
                image_file=mask.cutout_file, caption=caption, token_caption=caption,
                masks={1: mask.file}, review_state="auto-rejected" if reasons else "auto-kept",
                reasons=reasons, build_index=n, provenance={"profile": profile}))
    return folder


def states(window) -> list[str]:
    with Project.open(window.project.root) as project:
        return [i.review_state for i in project.dataset_items()]


@pytest.fixture
def review(make_window, qtbot, tmp_path):
    window = make_window(review_project(tmp_path / "p"))
    window.steps.setCurrentWidget(window.dataset_page)
    qtbot.waitUntil(lambda: window.dataset_page.model.rowCount() == 3, timeout=10_000)
    return window


def test_review_undo_redo_and_the_filters_verdict(review, qtbot):
    page, grid = review.dataset_page, review.dataset_page.grid
    grid.setCurrentIndex(page.model.index(0))
    press_key(qtbot, review, Qt.Key.Key_A, widget=grid)
    assert states(review)[0] == "accepted"
    press_key(qtbot, review, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier, grid)
    assert states(review)[0] == "auto-kept"
    assert "1 accepted" not in page.counts.text()
    press_key(qtbot, review, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier
              | Qt.KeyboardModifier.ShiftModifier, grid)
    assert states(review)[0] == "accepted"
    # The filter rejected #1; the user accepts it, then gives it back to the filter.
    grid.setCurrentIndex(page.model.index(1))
    press_key(qtbot, review, Qt.Key.Key_A, widget=grid)
    assert states(review)[1] == "accepted"
    press_key(qtbot, review, Qt.Key.Key_U, widget=grid)
    assert states(review)[1] == "auto-rejected"
    assert page.undo_button.toolTip().startswith("Undo give back to the filter 1 picture")
    # Several at once, by the button: one step for undo.
    grid.selectAll()
    qtbot.mouseClick(page.automatic_button, Qt.MouseButton.LeftButton)
    assert states(review) == ["auto-kept", "auto-rejected", "auto-kept"]
    qtbot.mouseClick(page.undo_button, Qt.MouseButton.LeftButton)
    assert states(review) == ["accepted", "auto-rejected", "auto-kept"]


def test_double_click_shows_an_item_large(review, qtbot):
    page, grid = review.dataset_page, review.dataset_page.grid
    cell = grid.visualRect(page.model.index(2))
    # A double-click as the system delivers it: press and release, then the double click
    # (PySide's QTest.mouseDClick sends only the last event).
    QTest.mouseClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=cell.center())
    QTest.mouseDClick(grid.viewport(), Qt.MouseButton.LeftButton, pos=cell.center())
    viewer = page.viewer
    qtbot.waitUntil(viewer.isVisible, timeout=5_000)
    assert viewer.caption.text() == LONG  # the whole caption
    assert TEST_NOTE in viewer.verdict.text()
    qtbot.waitUntil(lambda: viewer.picture.pixmap() is not None
                    and not viewer.picture.pixmap().isNull(), timeout=30_000)
    assert viewer.picture.pixmap().width() > ITEM_SIDE  # larger than the grid's cell
    QTest.keyClick(viewer, Qt.Key.Key_Left)
    assert viewer.caption.text() == "a hidden cat"
    assert "the cat is mostly hidden" in viewer.verdict.text()
    QTest.keyClick(viewer, Qt.Key.Key_A)
    assert states(review)[1] == "accepted"
    assert "the filter said: rejected by the filter" in viewer.verdict.text()
    QTest.keyClick(viewer, Qt.Key.Key_Escape)
    assert not viewer.isVisible()


def test_a_cut_caption_ends_with_an_ellipsis(qapp):
    metrics = QFontMetrics(QFont())
    lines = caption_lines(metrics, LONG, 160, 2)
    assert len(lines) == 2 and lines[1].endswith("…")
    assert all(metrics.horizontalAdvance(line) <= 160 for line in lines)
    assert " ".join(lines).rstrip("…").split()[0] == "<mochi>"
    assert caption_lines(metrics, "a cat", 160, 2) == ["a cat"]


def test_pictures_of_the_test_models_are_marked_and_left_out_on_a_real_profile(review, qtbot):
    page = review.dataset_page
    assert TEST_NOTE in page.model.index(0).data(Qt.ItemDataRole.ToolTipRole)
    assert TEST_NOTE not in page.model.index(1).data(Qt.ItemDataRole.ToolTipRole)
    assert "2 will be used for training." in page.counts.text()  # on the tiny profile
    qtbot.waitUntil(lambda: page.model.index(0).data(Qt.ItemDataRole.DecorationRole)
                    is not None, timeout=30_000)
    shot = page.grid.viewport().grab().toImage()
    cell = page.grid.visualRect(page.model.index(0)).adjusted(4, 4, -4, -4)
    badge = QColor(shot.pixel(cell.left() + 9, cell.top() + 9))  # inside its corner
    assert (badge.red(), badge.green(), badge.blue()) == pytest.approx((255, 214, 102), abs=25)
    review.state.settings = replace(review.state.settings, profile="sd15")
    assert "0 will be used for training (2 kept pictures made with the test models are left " \
        "out on this profile)" in page.counts.text()


def test_training_leaves_test_pictures_out_unless_asked(tmp_path):
    """The engine's side: the snapshot a new run trains on, per profile and switch."""
    from engine.cli import build_parser
    from engine.cli.arguments import given_values
    from engine.train.config import TrainConfig
    from engine.train.data import take_snapshot
    from engine.train.training_job import _new_run

    folder = make_train_project(tmp_path / "t")
    with Project.open(folder) as project:
        real = project.dataset_items("auto-kept")
        for n, item in enumerate(real[:2]):
            project.add_dataset_item(replace(item, id=None, build_index=100 + n,
                                             provenance={"profile": "tiny"}))
        assert len(take_snapshot(project).items) == 6
        assert len(take_snapshot(project, test_pictures=False).items) == 4
        _run, on_sd15 = _new_run(project, TrainConfig(), "sd15")
        _run, included = _new_run(project, TrainConfig(include_test_pictures=True), "sd15")
        _run, on_tiny = _new_run(project, TrainConfig(), "tiny")
        assert (len(on_sd15.items), len(included.items), len(on_tiny.items)) == (4, 6, 6)
        for item in project.dataset_items():
            if not item.provenance:  # every real picture: only test ones are kept
                project.set_review_state(item.id, "rejected")
        with pytest.raises(InputError, match="--include-test-pictures"):
            take_snapshot(project, test_pictures=False)
    args = build_parser().parse_args(["train", str(folder), "--include-test-pictures"])
    assert given_values(TrainConfig, args)["include_test_pictures"] is True
    assert TrainConfig.from_dict(TrainConfig().to_dict()).include_test_pictures is False
