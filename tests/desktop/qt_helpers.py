"""Helpers of the desktop tests: drops as Qt delivers them, waiting for jobs, mouse drags,
key presses."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

JOB_TIMEOUT_MS = 240_000  # a job in a cold worker on two busy cores


def drop_files(target: QWidget, paths: list[Path], pos: QPoint | None = None) -> bool:
    """Drag the files over `target` and drop them at `pos` (default: its centre), as Qt does;
    True if the drop was accepted."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    point = QPointF(pos if pos is not None else target.rect().center())
    action, button, mods = (Qt.DropAction.CopyAction, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    # Enter and move events take an integer QPoint in PySide6 6.11, the drop a QPointF.
    enter = QDragEnterEvent(point.toPoint(), action, mime, button, mods)
    QApplication.sendEvent(target, enter)
    move = QDragMoveEvent(point.toPoint(), action, mime, button, mods)
    QApplication.sendEvent(target, move)
    drop = QDropEvent(point, action, mime, button, mods)
    QApplication.sendEvent(target, drop)
    return drop.isAccepted()


def wait_for_jobs(qtbot, window, timeout: int = JOB_TIMEOUT_MS) -> None:
    """Until every job the window started has ended and no new one followed for a moment (a
    finished job's events reach the views, which may start the next job, a little later)."""
    idle_since: list[float] = []

    def settled() -> bool:
        if window.jobs.has_running_jobs():
            idle_since.clear()
            return False
        if not idle_since:
            idle_since.append(time.monotonic())
        return time.monotonic() - idle_since[0] > 0.4

    qtbot.waitUntil(settled, timeout=timeout)


def drag(viewport: QWidget, points: list[QPoint],
         modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    """Press at the first point, move through the others with the button held, release at the
    last; the modifiers are held throughout."""
    button = Qt.MouseButton.LeftButton
    QTest.mousePress(viewport, button, modifiers, points[0])
    for point in points[1:]:
        local = QPointF(point)
        move = QMouseEvent(QEvent.Type.MouseMove, local, QPointF(viewport.mapToGlobal(point)),
                           Qt.MouseButton.NoButton, button, modifiers)
        QApplication.sendEvent(viewport, move)
    QTest.mouseRelease(viewport, button, modifiers, points[-1])


def press_key(qtbot, window: QWidget, key: Qt.Key,
              modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier,
              widget: QWidget | None = None) -> None:
    """A key press as the user makes it: the window active (so its shortcuts are live), the
    key to `widget` (default: the window's focused widget)."""
    window.raise_()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=10_000)
    if widget is not None:
        widget.setFocus()
    QTest.keyClick(widget or window.focusWidget() or window, key, modifiers)
