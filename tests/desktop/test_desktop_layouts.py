"""The canvas layout editor: move and resize boxes with the mouse (aspect kept unless Shift),
keys for delete, nudge and z-order, add a concept, edit scene and caption; every change is
saved to the project and undo/redo restores it. "New layouts" runs the planner job."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from engine.jobs.registry import target_overrides
from engine.project import Project

from dataset_project import make_dataset_project  # isort: skip
from qt_helpers import drag, wait_for_jobs  # isort: skip


@pytest.fixture
def layouts_window(make_window, qtbot, tmp_path):
    window = make_window(make_dataset_project(tmp_path / "p"))
    window.steps.setCurrentWidget(window.layouts_page)
    page = window.layouts_page
    qtbot.waitUntil(lambda: len(page.canvas.pixmaps) == 3, timeout=30_000)  # the cut-outs
    return window


def stored(window, layout_id: int = 1):
    with Project.open(window.project.root) as project:
        return {o.concept_id: o for o in project.layout(layout_id).objects}


def on_view(canvas, x: float, y: float) -> QPoint:
    return canvas.mapFromScene(QPointF(x, y))


def test_move_and_resize_with_the_mouse_then_undo(layouts_window, qtbot):
    page = layouts_window.layouts_page
    canvas = page.canvas
    assert page.layout_list.count() == 3
    assert sorted(i.name for i in canvas.items_by_concept.values()) == ["Cup", "Mochi", "Rocket"]
    original = stored(layouts_window)
    cat = canvas.items_by_concept[1]
    centre = cat.mapToScene(cat.boundingRect().center())

    drag(canvas.viewport(), [on_view(canvas, centre.x(), centre.y()),
                             on_view(canvas, centre.x() + 20, centre.y() + 10),
                             on_view(canvas, centre.x() + 40, centre.y() + 25)])
    moved = stored(layouts_window)[1]
    assert moved.x > original[1].x + 0.04 and moved.y > original[1].y + 0.02
    assert (moved.w, moved.h) == pytest.approx((original[1].w, original[1].h))
    assert page.undo_action.text() == "Undo Move Mochi"

    # Resize from the bottom-right handle: proportions kept.
    corner = cat.mapToScene(QPointF(cat.w, cat.h))
    drag(canvas.viewport(), [on_view(canvas, corner.x(), corner.y()),
                             on_view(canvas, corner.x() + 30, corner.y() + 5),
                             on_view(canvas, corner.x() + 45, corner.y() + 10)])
    resized = stored(layouts_window)[1]
    assert resized.w > moved.w + 0.05
    assert resized.w / resized.h == pytest.approx(moved.w / moved.h, rel=0.01)
    assert (resized.x, resized.y) == pytest.approx((moved.x, moved.y))

    # Shift frees the proportions.
    corner = cat.mapToScene(QPointF(cat.w, cat.h))
    drag(canvas.viewport(), [on_view(canvas, corner.x(), corner.y()),
                             on_view(canvas, corner.x() - 40, corner.y() + 5)],
         Qt.KeyboardModifier.ShiftModifier)
    free = stored(layouts_window)[1]
    assert free.w / free.h != pytest.approx(resized.w / resized.h, rel=0.05)

    for expected in (resized, moved, original[1]):
        page.undo_action.trigger()
        assert stored(layouts_window)[1] == expected
        assert cat.box() == pytest.approx((expected.x, expected.y, expected.w, expected.h))
    assert not page.undo_action.isEnabled()
    page.redo_action.trigger()
    assert stored(layouts_window)[1] == moved


def test_boxes_stay_on_the_canvas(layouts_window):
    canvas = layouts_window.layouts_page.canvas
    rocket = canvas.items_by_concept[3]
    centre = rocket.mapToScene(rocket.boundingRect().center())
    drag(canvas.viewport(), [on_view(canvas, centre.x(), centre.y()),
                             on_view(canvas, centre.x() + 900, centre.y() - 900)])
    box = stored(layouts_window)[3]
    assert box.x + box.w <= 1 + 1e-6 and box.y == 0


def test_keys_delete_nudge_and_reorder(layouts_window, qtbot):
    page = layouts_window.layouts_page
    canvas = page.canvas
    original = stored(layouts_window)
    canvas.setFocus()
    canvas.select_only(2)
    for _ in range(3):
        QTest.keyClick(canvas, Qt.Key.Key_Right)
    assert stored(layouts_window)[2].x == pytest.approx(original[2].x + 0.015)
    assert page.undo_action.text() == "Undo Nudge"  # three presses, one step
    QTest.keyClick(canvas, Qt.Key.Key_BracketRight, Qt.KeyboardModifier.ControlModifier)
    assert stored(layouts_window)[2].z > original[2].z
    QTest.keyClick(canvas, Qt.Key.Key_Delete)
    assert 2 not in stored(layouts_window)
    assert 2 not in canvas.items_by_concept
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert 2 in stored(layouts_window) and 2 in canvas.items_by_concept
    page.undo_action.trigger()
    page.undo_action.trigger()
    assert stored(layouts_window) == original


def test_add_concept_and_edit_scene_and_caption(layouts_window, qtbot):
    page = layouts_window.layouts_page
    page.open_layout(2)  # rocket and cat: the cup can be added
    assert [page.add_combo.itemText(i) for i in range(page.add_combo.count())] == ["Cup"]
    page.add_chosen_concept()
    cup = stored(layouts_window, 2)[2]
    assert cup.z == 2 and 0 < cup.x < 1
    assert page.add_combo.count() == 0
    page.scene_edit.setText("a snowy mountain hut")
    page.commit_scene()
    page.caption_edit.setPlainText("A cat and a rocket in a hut.")
    page.commit_caption()
    with Project.open(layouts_window.project.root) as project:
        layout = project.layout(2)
    assert (layout.scene, layout.caption) == ("a snowy mountain hut",
                                              "A cat and a rocket in a hut.")
    assert "#2 · a snowy mountain hut" in page.layout_list.currentItem().text()
    for _ in range(3):
        page.undo_action.trigger()
    with Project.open(layouts_window.project.root) as project:
        layout = project.layout(2)
    assert layout.scene == "a cosy living room" and len(layout.objects) == 2
    # Each layout has its own history.
    page.open_layout(1)
    assert not page.undo_action.isEnabled()


def test_new_layouts_ask_the_planner(layouts_window, qtbot, monkeypatch):
    monkeypatch.setitem(target_overrides, "plan", "desktop_jobs_for_tests:scripted_plan_job")
    page = layouts_window.layouts_page
    page.plan_count.setValue(2)
    qtbot.mouseClick(page.plan_button, Qt.MouseButton.LeftButton)
    assert not page.plan_button.isEnabled()
    qtbot.waitUntil(lambda: page.layout_list.count() == 5, timeout=240_000)
    wait_for_jobs(qtbot, layouts_window)
    assert page.plan_button.isEnabled() and "2 new layouts" in page.plan_status.text()
    assert page.document.layout.id == 4  # the first new one is open
    assert len(page.canvas.items_by_concept) == 3
    assert "planner (scripted)" in page.source_label.text()
