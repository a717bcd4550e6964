"""The mask editor: a click asks the segmenter (job "segment-prompts"), a box too, a brush
stroke changes only what it covers (job "paint-mask"); undo makes the earlier mask current
again, redo the later one. The project keeps every mask."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image
from PySide6.QtCore import QPoint, QPointF

from engine.masks import read_mask
from engine.project import Project

from dataset_project import add_photo_with_cutout  # isort: skip
from qt_helpers import drag, wait_for_jobs  # isort: skip


def make_project(folder, side: int = 300):
    from skimage import data

    with Project.create(folder, "Masks") as project:
        cat = project.add_concept("Mochi", "cat")
        add_photo_with_cutout(project, cat.id, data.chelsea(), "chelsea.png", side)
    return folder


def current(window):
    project = window.project
    return project.current_masks(1)[1]


def mask_of(window, mask) -> np.ndarray:
    return read_mask(str(window.project.abspath(mask.file)))


def view_point(editor, x: float, y: float) -> QPoint:
    """Photo pixels -> the canvas viewport's pixels."""
    scale = editor.current.scale
    return editor.canvas.mapFromScene(QPointF(x * scale, y * scale))


def test_click_box_brush_undo_redo(make_window, qtbot, tmp_path):
    window = make_window(make_project(tmp_path / "p"))
    tab, editor = window.concepts_page, window.concepts_page.editor
    grid = tab.page.grid
    assert grid.count() == 1 and "test-ellipse" in grid.item(0).text()
    grid.itemClicked.emit(grid.item(0))
    assert tab.stack.currentWidget() is editor
    qtbot.waitUntil(lambda: not editor.canvas.mask.isNull(), timeout=30_000)
    first = current(window)
    assert first.method == "test-ellipse"

    # A click on the object: the segmenter refines the mask (on the test profile the GrabCut
    # fallback: its SAM's masks would be noise).
    editor.set_tool("add")
    drag(editor.canvas.viewport(), [view_point(editor, 150, 100)])
    qtbot.waitUntil(lambda: current(window).id != first.id, timeout=240_000)
    wait_for_jobs(qtbot, window)
    clicked = current(window)
    assert clicked.method == "fallback-grabcut-refined"
    assert editor.current.prompts.labels == (1,) and editor.undo_stack.count() == 1

    # A box: kept with the click in the next prompt.
    editor.set_tool("box")
    drag(editor.canvas.viewport(), [view_point(editor, 20, 20), view_point(editor, 120, 90),
                                    view_point(editor, 200, 160)])
    qtbot.waitUntil(lambda: editor.undo_stack.count() == 2, timeout=240_000)
    wait_for_jobs(qtbot, window)
    assert editor.current.prompts.box is not None and len(editor.current.prompts.points) == 1
    boxed = current(window)

    # The brush adds exactly where it went (the photo's top-left corner), nothing else moves.
    editor.set_tool("brush")
    editor.brush_size.setValue(8)
    drag(editor.canvas.viewport(), [view_point(editor, 4, 4), view_point(editor, 40, 4)])
    qtbot.waitUntil(lambda: editor.undo_stack.count() == 3, timeout=240_000)
    wait_for_jobs(qtbot, window)
    painted = current(window)
    assert painted.method == "painted" and painted.cutout_file
    before, after = mask_of(window, boxed), mask_of(window, painted)
    assert after[4, 10:35].all()
    far = np.ones_like(before)
    far[:30, :60] = False
    assert (before[far] == after[far]).all()

    # Undo walks back through the masks, redo forward again; each is current in the project.
    editor.undo_action.trigger()
    assert current(window).file == boxed.file
    editor.undo_action.trigger()
    editor.undo_action.trigger()
    assert current(window).file == first.file and current(window).method == "test-ellipse"
    assert not editor.undo_action.isEnabled()
    editor.redo_action.trigger()
    assert current(window).file == clicked.file
    assert editor.current.prompts.labels == (1,) and editor.current.prompts.box is None
    qtbot.waitUntil(lambda: not tab.page.grid.item(0).icon().isNull(), timeout=30_000)
    editor.close_editor()
    assert tab.stack.currentWidget() is tab.page
    assert "GrabCut fallback, refined by you" in tab.page.grid.item(0).text()


def test_a_refused_prompt_is_reported_and_forgotten(make_window, qtbot, tmp_path):
    window = make_window(make_project(tmp_path / "p"))
    editor = window.concepts_page.editor
    window.concepts_page.open_editor(1)
    qtbot.waitUntil(lambda: not editor.canvas.mask.isNull(), timeout=30_000)
    editor.set_tool("erase")
    editor.brush_size.setValue(200)  # erases the whole mask: the engine refuses
    drag(editor.canvas.viewport(), [view_point(editor, 0, 0), view_point(editor, 300, 0),
                                    view_point(editor, 300, 200), view_point(editor, 0, 200)])
    qtbot.waitUntil(lambda: "Nothing is left of the mask" in editor.status.text(),
                    timeout=240_000)
    assert editor.undo_stack.count() == 0
    assert current(window).method == "test-ellipse"


def test_paint_job_keeps_full_resolution_outside_the_stroke(tmp_path):
    """The brush job on its own: a stroke drawn on a half-size view changes only its pixels."""
    from engine.jobs import inline_context
    from engine.segment.jobs import PaintMaskParams
    from engine.segment.segment_photos import paint_mask_job

    folder = make_project(tmp_path / "p")
    with Project.open(folder) as project:
        base = project.current_masks(1)[1]
        photo = project.photo(1)
    stroke = np.zeros((photo.height // 2, photo.width // 2), np.uint8)
    stroke[:10, :] = 255
    result = paint_mask_job(inline_context(), PaintMaskParams(
        project=str(folder), photo_id=1, concept_id=1, mode="add", stroke=stroke.tobytes(),
        width=stroke.shape[1], height=stroke.shape[0], stride=stroke.shape[1],
        base_mask_id=base.id))
    with Project.open(folder) as project:
        new = project.current_masks(1)[1]
        old_mask = read_mask(str(project.abspath(base.file)))
        new_mask = read_mask(str(project.abspath(new.file)))
        cut = Image.open(io.BytesIO(project.abspath(new.cutout_file).read_bytes()))
        assert hashlib.sha256(project.abspath(new.file).read_bytes()).hexdigest() in new.file
    assert result.mask_id == new.id and new.method == "painted"
    assert new_mask[:18].all() and (new_mask[24:] == old_mask[24:]).all()
    assert cut.mode == "RGBA"
