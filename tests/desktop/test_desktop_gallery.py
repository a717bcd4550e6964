"""The Gallery and the Generate step on the tiny profile: pictures generated from the window
land in the gallery with their scores; the gallery pages its rows as it scrolls, filters
(prompt text, concept, score, favourites), favourites, deletes and undoes; a picture opens
large with its concept boxes; "use this recipe" fills only the fields the user ticks."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from desktop_app.state.gallery_model import PAGE
from engine.project import Project, Score

from qt_helpers import wait_for_jobs  # isort: skip
from scoring_project import add_picture, make_scoring_project, picture  # isort: skip
from train_project import make_train_project  # isort: skip


def _select(page, ids: list[int]) -> None:
    selection = page.grid.selectionModel()
    selection.clearSelection()
    for gid in ids:
        selection.select(page.model.index(page.model.row_of(gid)),
                         selection.SelectionFlag.Select)


def test_gallery_filters_favourites_deletes_and_undoes(make_window, qtbot, tmp_path):
    folder = make_scoring_project(tmp_path / "p")
    with Project.open(folder) as project:
        first = project.gallery(sort="oldest")[0]
        project.replace_scores(first.id, [
            Score(generation_id=first.id, metric="ti-clip", value=0.31, model="tiny",
                  test_model=True),
            Score(generation_id=first.id, metric="cp-clip", value=0.6, model="tiny",
                  test_model=True)])
    window = make_window(folder)
    page = window.gallery_page
    window.steps.setCurrentWidget(page)
    assert page.model.rowCount() == 4 and page.status.text() == "4 pictures."
    image = page.model.images[page.model.row_of(first.id)]
    assert image.scored and image.test_model
    assert "test models" in page.model.index(page.model.row_of(first.id)).data(
        Qt.ItemDataRole.ToolTipRole)

    page.text.setText("MUG")  # any case
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=5000)
    page.text.setText("")
    page.concept.setCurrentIndex(page.concept.findText("Rocket <rocket>"))
    assert page.model.rowCount() == 1
    page.concept.setCurrentIndex(0)
    page.min_ti.setValue(0.3)
    assert [i.id for i in page.model.images] == [first.id]
    page.min_ti.setValue(page.min_ti.minimum())
    assert page.model.rowCount() == 4

    # Favourite two, then show only favourites.
    two = [page.model.images[0].id, page.model.images[1].id]
    _select(page, two)
    qtbot.mouseClick(page.favourite_button, Qt.MouseButton.LeftButton)
    page.favourites.setChecked(True)
    assert sorted(i.id for i in page.model.images) == sorted(two)
    page.favourites.setChecked(False)

    # Delete, then undo: the trash and back, files and rows.
    _select(page, two)
    qtbot.mouseClick(page.delete_button, Qt.MouseButton.LeftButton)
    assert page.model.rowCount() == 2
    with Project.open(folder) as project:
        assert project.trash_count() == 2
        assert all(project.gallery_image(g).path.is_file() for g in two)
    qtbot.mouseClick(page.undo_button, Qt.MouseButton.LeftButton)
    assert page.model.rowCount() == 4
    with Project.open(folder) as project:
        assert project.trash_count() == 0
        assert all(project.gallery_image(g).generation.favourite for g in two)

    # The full view: the picture with its scores.
    dialog = page._dialog([image])
    assert "CP-CLIP</b> 0.60" in dialog.panels[0].scores.text()
    assert "Test models" in dialog.panels[0].scores.text()
    dialog.close()


def test_gallery_fetches_rows_a_page_at_a_time(make_window, qtbot, tmp_path):
    folder = make_scoring_project(tmp_path / "p")
    with Project.open(folder) as project:
        image = picture(project, [], 9)
        for n in range(PAGE + 30):
            add_picture(project, f"picture {n}", image, seed=n)
    window = make_window(folder)
    page = window.gallery_page
    window.steps.setCurrentWidget(page)
    assert page.model.total == PAGE + 34 and page.model.rowCount() == PAGE
    page.grid.scrollToBottom()
    qtbot.waitUntil(lambda: page.model.rowCount() == PAGE + 34, timeout=5000)


def test_use_this_recipe_fills_only_the_chosen_fields(make_window, qtbot, tmp_path):
    folder = make_scoring_project(tmp_path / "p")
    window = make_window(folder)
    gen_page, gallery = window.generate_page, window.gallery_page
    gen_page.prompt.setText("my own prompt")
    gen_page.form.set_values({"steps": 7, "guidance": 3.0, "negative": "blurry"})
    gen_page.seed.setText("")
    with Project.open(folder) as project:
        target = project.gallery(text="table")[0]
    settings = dict(target.generation.settings, seed=4242, steps=33, guidance=9.0)
    window.use_recipe(settings, {"seed", "steps"})
    assert window.steps.currentWidget() is gen_page
    assert gen_page.seed.text() == "4242" and gen_page.lock_seed.isChecked()
    assert gen_page.form.value("steps") == 33
    # Untouched: what the user had set.
    assert gen_page.prompt.text() == "my own prompt"
    assert gen_page.form.value("guidance") == 3.0
    assert gen_page.form.value("negative") == "blurry"
    # Through the dialog: only the boxes ticked.
    gallery.use_recipe(target.id)
    dialog = gallery.recipe_dialog
    for name, box in dialog.boxes.items():
        box.setChecked(name == "prompt")
    dialog.accept()
    assert gen_page.prompt.text() == target.generation.prompt
    assert gen_page.seed.text() == "4242" and gen_page.form.value("steps") == 33


def test_generate_from_the_window_lands_scored_in_the_gallery(make_window, qtbot, tmp_path):
    folder = make_train_project(tmp_path / "p")
    from engine.jobs import JobFinished, run_inline

    end = run_inline("train", {"project": str(folder), "profile": "tiny", "device": "cpu",
                               "config": {"steps": 2, "sample_every": 0}})
    assert isinstance(end, JobFinished)
    window = make_window(folder)
    page = window.generate_page
    window.steps.setCurrentWidget(page)
    assert page.run.count() == 1 and page.generate_button.isEnabled()
    assert set(page.chips.buttons) == {"<mochi>", "<cup>", "<rocket>"}
    page.prompt.setText("")
    page.chips.buttons["<mochi>"].click()
    page.prompt.setText(page.prompt.text() + " and <cu")
    page.prompt.setCursorPosition(len(page.prompt.text()))
    page.prompt.insert_completion("<cup>")
    assert page.prompt.text() == "<mochi> cat and <cup> mug"
    page.prompt.setText(page.prompt.text() + " on a beach")
    page.form.set_values({"count": 2, "steps": 3, "preview_every": 1})
    page.layout_choice.setCurrentIndex(page.layout_choice.findData("draw"))
    page.canvas.set_box("<mochi>", (0.0, 0.0, 0.5, 1.0))
    page.canvas.set_box("<cup>", (0.5, 0.0, 1.0, 1.0))
    qtbot.mouseClick(page.generate_button, Qt.MouseButton.LeftButton)
    wait_for_jobs(qtbot, window)
    assert "2 picture(s)" in page.status.text(), page.status.text()
    gallery = window.gallery_page
    assert gallery.model.rowCount() == 0  # hidden: it reads the new pictures when shown
    window.steps.setCurrentWidget(gallery)
    assert gallery.model.rowCount() == 2
    images = gallery.model.images
    assert all(i.scored and i.test_model and i.guided for i in images)
    assert {c.token for c in images[0].concepts} == {"<mochi>", "<cup>"}
    assert not page.preview.pixmap().isNull()


def test_export_selected_and_open_the_report(make_window, qtbot, tmp_path, monkeypatch):
    folder = make_scoring_project(tmp_path / "p")
    window = make_window(folder)
    page = window.gallery_page
    two = [page.model.images[0].id, page.model.images[2].id]
    _select(page, two)
    page.export(tmp_path / "out")
    qtbot.waitUntil(lambda: not page.export_timer.isActive(), timeout=20_000)
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
    assert len(list((tmp_path / "out").glob("*.json"))) == 2
    assert page.status.text().startswith("Exported 2 picture(s)")
    opened = []
    monkeypatch.setattr(page, "open_url", opened.append)
    qtbot.mouseClick(page.report_button, Qt.MouseButton.LeftButton)
    wait_for_jobs(qtbot, window)
    assert len(opened) == 1 and opened[0].toLocalFile().endswith(".html")
    html = Path(opened[0].toLocalFile()).read_text(encoding="utf-8")
    assert "<html" in html[:2000].lower()
