"""Issue 12, item 5: the mask editor's toolbar keeps its size (undo and redo do not grow into
"Undo segment with prompts" and push Done into an overflow menu); a box that loses part of the
previous mask inside it is shown before/after and can be taken back; zoom and pan, overlay
opacity and brush size keys."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QUndoCommand, QWheelEvent
from PySide6.QtWidgets import QApplication

from engine.jobs.registry import target_overrides

from qt_helpers import drag, press_key, wait_for_jobs  # isort: skip
from test_desktop_mask_editor import current, make_project, view_point  # isort: skip


def open_editor(make_window, qtbot, tmp_path):
    window = make_window(make_project(tmp_path / "p"))
    editor = window.concepts_page.editor
    window.concepts_page.open_editor(1)
    qtbot.waitUntil(lambda: not editor.canvas.mask.isNull(), timeout=30_000)
    return window, editor


def shown(toolbar, action) -> bool:
    widget = toolbar.widgetForAction(action)
    return widget is not None and widget.isVisible()


def test_the_toolbar_keeps_its_size_and_says_what_undo_takes_back(make_window, qtbot,
                                                                   tmp_path):
    _window, editor = open_editor(make_window, qtbot, tmp_path)
    bar = editor.toolbar
    width = bar.sizeHint().width()
    actions = (editor.undo_action, editor.redo_action, editor.done_action)
    assert all(shown(bar, a) for a in actions) and width <= editor.width()
    assert not editor.undo_action.isEnabled() and editor.undo_action.toolTip() == \
        "Nothing to undo"
    editor.undo_stack.push(QUndoCommand("segment with prompts"))
    assert editor.undo_action.isEnabled() and editor.undo_action.text() == "Undo"
    assert editor.undo_action.toolTip().startswith("Undo segment with prompts")
    assert not editor.undo_action.icon().isNull()
    editor.undo_stack.undo()
    assert editor.redo_action.text() == "Redo"
    assert editor.redo_action.toolTip().startswith("Redo segment with prompts")
    assert bar.sizeHint().width() == width and all(shown(bar, a) for a in actions)


def test_a_box_that_loses_part_of_the_mask_is_shown_before_and_after(
        make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setitem(target_overrides, "segment-prompts",
                        "desktop_jobs_for_tests:shrinking_box_job")
    window, editor = open_editor(make_window, qtbot, tmp_path)
    first = current(window)
    before = editor.canvas.mask.copy()
    editor.set_tool("box")
    drag(editor.canvas.viewport(), [view_point(editor, 20, 20), view_point(editor, 150, 100),
                                    view_point(editor, 280, 190)])
    compare = editor.compare
    qtbot.waitUntil(compare.isVisible, timeout=240_000)
    wait_for_jobs(qtbot, window)
    assert current(window).id != first.id  # the new mask is current, and said to be worse
    assert "left out" in compare.label.text() and "%" in compare.label.text()
    assert not editor.canvas.lost_item.pixmap().isNull()  # the lost part, in red
    after = editor.canvas.mask.copy()
    assert after != before
    qtbot.mouseClick(compare.before_button, Qt.MouseButton.LeftButton)
    assert editor.canvas.mask == before and not editor.canvas.lost_item.isVisible()
    qtbot.mouseClick(compare.before_button, Qt.MouseButton.LeftButton)
    assert editor.canvas.mask == after and editor.canvas.lost_item.isVisible()
    back = compare.findChild(type(compare.before_button), "compareBack")
    qtbot.mouseClick(back, Qt.MouseButton.LeftButton)
    assert not compare.isVisible() and editor.canvas.lost_item.pixmap().isNull()
    assert current(window).file == first.file  # the previous mask is current again
    assert editor.redo_action.isEnabled()


def test_zoom_pan_opacity_and_brush_keys(make_window, qtbot, tmp_path):
    window, editor = open_editor(make_window, qtbot, tmp_path)
    canvas = editor.canvas
    fitted = canvas.zoom_level()
    # The wheel zooms around the pointer, + and - too, 0 fits again.
    centre = QPointF(canvas.viewport().rect().center())
    wheel = QWheelEvent(centre, QPointF(canvas.viewport().mapToGlobal(centre.toPoint())),
                        QPoint(0, 0), QPoint(0, 240), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(canvas.viewport(), wheel)
    zoomed = canvas.zoom_level()
    assert zoomed > fitted * 1.5
    press_key(qtbot, window, Qt.Key.Key_Plus, widget=canvas)
    assert canvas.zoom_level() > zoomed
    press_key(qtbot, window, Qt.Key.Key_Minus, widget=canvas)
    assert abs(canvas.zoom_level() - zoomed) < 1e-6
    # The middle button pans.
    bar = canvas.horizontalScrollBar()
    start = bar.value()
    press_at = canvas.viewport().rect().center()
    for kind, pos, buttons in ((QEvent.Type.MouseButtonPress, press_at,
                                Qt.MouseButton.MiddleButton),
                               (QEvent.Type.MouseMove, press_at + QPoint(60, 0),
                                Qt.MouseButton.MiddleButton),
                               (QEvent.Type.MouseButtonRelease, press_at + QPoint(60, 0),
                                Qt.MouseButton.NoButton)):
        event = QMouseEvent(kind, QPointF(pos), QPointF(canvas.viewport().mapToGlobal(pos)),
                            Qt.MouseButton.MiddleButton, buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(canvas.viewport(), event)
    assert bar.value() == start - 60
    assert current(window).method == "test-ellipse"  # panning asked the segmenter nothing
    press_key(qtbot, window, Qt.Key.Key_0, widget=canvas)
    assert abs(canvas.zoom_level() - fitted) < 1e-6
    # The overlay's opacity follows the slider.
    editor.opacity.setValue(80)
    assert abs(canvas.overlay_item.opacity() - 0.8) < 1e-6
    # [ and ] make the brush smaller and bigger.
    size = editor.brush_size.value()
    press_key(qtbot, window, Qt.Key.Key_BracketRight, widget=canvas)
    assert editor.brush_size.value() > size and canvas.brush_radius == editor.brush_size.value()
    press_key(qtbot, window, Qt.Key.Key_BracketLeft, widget=canvas)
    press_key(qtbot, window, Qt.Key.Key_BracketLeft, widget=canvas)
    assert editor.brush_size.value() < size
