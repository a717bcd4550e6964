"""Issue 12, item 6: on the layout canvas the selected item's handles win over an item that lies
on top of them, and "Add to the canvas" is disabled, with the reason, when there is nothing to
add."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF

from dataset_project import make_dataset_project  # isort: skip
from qt_helpers import drag  # isort: skip
from test_desktop_layouts import on_view, stored  # isort: skip


@pytest.fixture
def garden(make_window, qtbot, tmp_path):
    """Layout 3, "a garden": the cat (z 0) under the cup (z 1), whose box covers the cat's
    bottom-right corner."""
    window = make_window(make_dataset_project(tmp_path / "p"))
    window.steps.setCurrentWidget(window.layouts_page)
    page = window.layouts_page
    qtbot.waitUntil(lambda: len(page.canvas.pixmaps) == 3, timeout=30_000)
    page.open_layout(3)
    return window


def test_the_selected_items_handle_wins_over_an_item_on_top(garden):
    page = garden.layouts_page
    canvas = page.canvas
    before = stored(garden, 3)
    cat, cup = canvas.items_by_concept[1], canvas.items_by_concept[2]
    assert cup.zValue() > cat.zValue()
    corner = cat.mapToScene(QPointF(cat.w, cat.h))
    assert cup.sceneBoundingRect().contains(corner)  # the cup lies over the cat's handle
    canvas.select_only(1)
    drag(canvas.viewport(), [on_view(canvas, corner.x(), corner.y()),
                             on_view(canvas, corner.x() - 30, corner.y() - 15),
                             on_view(canvas, corner.x() - 60, corner.y() - 40)])
    after = stored(garden, 3)
    assert after[2] == before[2]  # the cup did not move
    assert after[1].w < before[1].w - 0.05  # the cat was resized from its corner
    assert (after[1].x, after[1].y) == pytest.approx((before[1].x, before[1].y))
    assert after[1].w / after[1].h == pytest.approx(before[1].w / before[1].h, rel=0.01)
    assert page.undo_action.text() == "Undo Resize Mochi"
    # Without the selection the cup on top takes the press: it moves, the cat does not.
    canvas.scene().clearSelection()
    centre = cup.mapToScene(cup.boundingRect().center())
    drag(canvas.viewport(), [on_view(canvas, centre.x(), centre.y()),
                             on_view(canvas, centre.x() + 20, centre.y() + 10)])
    moved = stored(garden, 3)
    assert moved[1] == after[1] and moved[2].x > after[2].x


def test_add_to_the_canvas_is_disabled_with_a_reason(garden):
    page = garden.layouts_page
    assert page.add_button.isEnabled() and page.add_combo.currentText() == "Rocket"
    page.add_chosen_concept()
    assert not page.add_button.isEnabled() and not page.add_combo.isEnabled()
    assert page.add_button.toolTip() == "Every concept is on this layout already"
    page.undo_action.trigger()
    assert page.add_button.isEnabled() and page.add_combo.count() == 1
    page.delete_layout(3)
    page.delete_layout(2)
    page.delete_layout(1)
    assert not page.add_button.isEnabled()
    assert page.add_button.toolTip() == "Open or make a layout first"
