"""What a new user hit on the second walk through the window (issue 26, items 4-7): Extract
keeps a box through a rename and takes typing after "Add a concept"; drops are copies and the
new concept's name comes from a photo, never from a refused file; Settings offers the
precision with its cost; and the small things (jobs panel, docks, status bar, the report, the
CP filter, the prompt completer, a brush stroke's journal entry, what a project remembers)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QPushButton

from qt_helpers import drag  # isort: skip


def _activate(qtbot, window) -> None:
    window.raise_()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=10_000)


# ---------------------------------------------------------------------- 4. Extract


def test_extract_keeps_a_box_through_a_rename_and_types_into_a_new_row(make_window, qtbot,
                                                                       tmp_path, photos):
    window = make_window(tmp_path / "p", create=True)
    page = window.extract_page
    window.steps.setCurrentWidget(page)
    page.use_file(photos["chelsea"])
    qtbot.waitUntil(lambda: not page.canvas.image.isNull(), timeout=20_000)
    _activate(qtbot, window)
    add = next(b for b in page.findChildren(QPushButton) if b.text() == "Add a concept")
    qtbot.mouseClick(add, Qt.MouseButton.LeftButton)
    # Typing right away names the new concept.
    QTest.keyClicks(QApplication.focusWidget(), "Mochi")
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.names() == [("Mochi", "")], timeout=5_000)  # a queued commit
    # A box drawn for it, then the concept renamed: the box stays with the row.
    canvas = page.canvas
    frame = canvas.frame()
    start = QPoint(int(frame.left() + 0.3 * frame.width()), int(frame.top() + 0.1 * frame.height()))
    end = QPoint(int(frame.left() + 0.9 * frame.width()), int(frame.top() + 0.9 * frame.height()))
    drag(canvas, [start, (start + end) / 2, end])
    assert "box" in page.concepts_param()[0]
    page.table.item(0, 0).setText("Mochi the cat")
    page.table.item(0, 1).setText("cat")
    concept = page.concepts_param()[0]
    assert concept["name"] == "Mochi the cat" and concept["class_word"] == "cat"
    w, h = page.photo_size
    box = [v / side for v, side in zip(concept["box"], (w, h, w, h), strict=True)]
    assert all(abs(a - b) < 0.02 for a, b in zip(box, (0.3, 0.1, 0.9, 0.9), strict=True))
    assert canvas.labels[canvas.names[0]] == "Mochi the cat"  # drawn under its new name
