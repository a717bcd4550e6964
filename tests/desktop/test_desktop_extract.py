"""The Extract step on the tiny profile: concepts named and boxed on one photo, extracted by
the window's job; each iteration's masks are shown as they are written (the slider steps
through them, a mask per concept); the concepts join the concept list; a mask is fixed in the
mask editor and the extraction runs again from the fixed masks."""

from __future__ import annotations

from PySide6.QtCore import Qt

from engine.project import Project

from qt_helpers import wait_for_jobs  # isort: skip


def test_extraction_shows_masks_per_iteration(make_window, qtbot, tmp_path, photos):
    folder = tmp_path / "p"
    window = make_window(folder, create=True)
    page = window.extract_page
    window.steps.setCurrentWidget(page)
    page.use_file(photos["chelsea"])
    qtbot.waitUntil(lambda: not page.canvas.image.isNull(), timeout=20_000)
    page.add_concept("Mochi", "cat")
    page.canvas.set_box(page.row_key(0), (0.3, 0.05, 0.95, 0.95))
    page.add_concept("Sofa", "sofa")
    page.canvas.set_box(page.row_key(1), (0.0, 0.0, 0.35, 1.0))
    concepts = page.concepts_param()
    w, h = page.photo_size
    assert concepts[0]["box"] == [0.3 * w, 0.05 * h, 0.95 * w, 0.95 * h]
    page.steps.setValue(4)
    page.rounds.setValue(2)
    page.ask_add_concepts = lambda names: "add"  # the question before new concepts
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert page.cancel_button.isEnabled()
    wait_for_jobs(qtbot, window)
    assert "Run " in page.status.text(), page.status.text()
    # Iteration 0 (the starting masks) and one after each of the two mask updates.
    assert len(page.view.iterations) == 3 and page.view.slider.maximum() == 2
    assert set(page.view.mask_labels) == {"<mochi>", "<sofa>"}
    qtbot.waitUntil(lambda: all(not label.pixmap().isNull()
                                for label in page.view.mask_labels.values()), timeout=20_000)
    assert not page.view.overlay.pixmap().isNull()
    page.view.slider.setValue(0)
    assert page.view.label.text().startswith("Iteration 0")
    assert {c.name for c in window.project.concepts()} == {"Mochi", "Sofa"}
    assert window.concepts.count() == 2

    # Fix a mask, then run again from the masks (no boxes this time).
    assert page.fix_button.isEnabled() and page.again_button.isEnabled()
    page.fix_mask()
    assert page.stack.currentWidget() is page.editor
    page.editor.close_editor()
    assert page.stack.currentWidget() is page.main_view
    qtbot.mouseClick(page.again_button, Qt.MouseButton.LeftButton)
    wait_for_jobs(qtbot, window)
    with Project.open(folder) as project:
        runs = project.runs("em-extract")
        assert [r.status for r in runs] == ["finished", "finished"]
        assert len({c.id for c in project.concepts()}) == 2  # the same concepts again
