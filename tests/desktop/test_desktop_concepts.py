"""Concepts from dropped photos: a drop on empty space asks for a new concept inline, the
photos are imported and segmented in the worker, thumbnails show the masks; a drop on a
concept adds to it; files the engine refuses become error rows."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor

from desktop_app.state.thumbnails import MASK_EDGE
from desktop_app.widgets.concept_drop import suggest_concept
from desktop_app.widgets.concepts_view import MASK_ID
from engine.project import Project

from qt_helpers import drop_files, wait_for_jobs  # isort: skip


def empty_space(view) -> QPoint:
    return QPoint(view.viewport().width() // 2, view.viewport().height() - 5)


def create_from_form(qtbot, window, name: str, class_word: str) -> None:
    form = window.concepts_page.form
    assert form.isVisible()
    form.name_edit.clear()
    qtbot.keyClicks(form.name_edit, name)
    form.class_edit.clear()
    qtbot.keyClicks(form.class_edit, class_word)
    qtbot.keyClick(form.class_edit, Qt.Key.Key_Return)
    assert not form.isVisible()


def edge_pixels(item) -> int:
    image = item.icon().pixmap(168, 168).toImage()
    colour = QColor(*MASK_EDGE).rgb()
    return sum(image.pixel(x, y) == colour for x in range(image.width())
               for y in range(0, image.height(), 2))


def masked_thumbnails(window, count: int) -> bool:
    grid = window.concepts_page.page.grid
    items = [grid.item(i) for i in range(grid.count())]
    return len(items) == count and all(i.data(MASK_ID) and not i.icon().isNull() for i in items)


def test_dropping_photos_creates_concepts_with_masked_thumbnails(make_window, qtbot, tmp_path,
                                                                 photos):
    window = make_window(tmp_path / "Pets", create=True)
    # A folder dropped on the empty part of the concept list: a new concept, named after it.
    assert drop_files(window.concepts.viewport(), [photos["cats"]],
                      empty_space(window.concepts))
    form = window.concepts_page.form
    assert form.name_edit.text() == "My cat photos" and form.class_edit.text() == "cat"
    assert form.token_edit.text() == "<my-cat-photos>"
    create_from_form(qtbot, window, "Mochi", "cat")
    assert form.token_edit.text() == "<mochi>"  # followed the typed name
    qtbot.waitUntil(lambda: masked_thumbnails(window, 2), timeout=240_000)
    grid = window.concepts_page.page.grid
    # The test profile's automatic masks: the labelled GrabCut fallback, real cut-outs.
    assert "GrabCut fallback" in grid.item(0).text()
    assert edge_pixels(grid.item(0)) > 20  # the mask's outline is drawn over the photo
    assert window.concepts.count() == 1 and "<mochi> · cat · 2 photos" in \
        window.concepts.item(0).text()

    # A photo dropped anywhere else on the window: another new concept.
    assert drop_files(window, [photos["coffee"]])
    create_from_form(qtbot, window, "Cup", "mug")
    qtbot.waitUntil(lambda: window.concepts.count() == 2 and masked_thumbnails(window, 1),
                    timeout=240_000)
    assert window.state.selected_concept == window.project.concept_by_name("Cup").id

    # A photo dropped on a concept joins it.
    mochi_row = window.concepts.visualItemRect(window.concepts.item(0)).center()
    assert drop_files(window.concepts.viewport(), [photos["rocket"]], mochi_row)
    assert not form.isVisible()
    qtbot.waitUntil(lambda: window.state.selected_concept == 1 and masked_thumbnails(window, 3),
                    timeout=240_000)
    wait_for_jobs(qtbot, window)
    with Project.open(tmp_path / "Pets") as project:
        mochi, cup = project.concepts()
        assert (mochi.token, mochi.class_word, cup.token) == ("<mochi>", "cat", "<cup>")
        assert len(project.photos(mochi.id)) == 3 and len(project.photos(cup.id)) == 1
        assert len(project.masks()) == 4
    assert window.concepts_page.problems.count() == 0


def test_bad_files_become_error_rows(make_window, qtbot, tmp_path, photos, bad_files):
    window = make_window(tmp_path / "P", create=True)
    drop_files(window, [photos["chelsea"], bad_files["text"], bad_files["truncated"]])
    create_from_form(qtbot, window, "Mochi", "cat")
    problems = window.concepts_page.problems
    qtbot.waitUntil(lambda: problems.count() == 2, timeout=240_000)
    rows = [problems.item(i).text() for i in range(2)]
    assert any("notes.jpg" in r for r in rows) and any("broken.png" in r for r in rows)
    assert window.concepts_page.problems_box.isVisible()
    qtbot.waitUntil(lambda: masked_thumbnails(window, 1), timeout=240_000)

    # Only bad files: every one is reported and no empty concept is left behind.
    window.concepts_page.clear_problems()
    drop_files(window, [bad_files["text"]])
    create_from_form(qtbot, window, "Nothing", "thing")
    qtbot.waitUntil(lambda: problems.count() == 1, timeout=240_000)
    wait_for_jobs(qtbot, window)
    assert [c.name for c in window.project.concepts()] == ["Mochi"]
    assert window.concepts.count() == 1


def test_drop_without_a_project_is_explained(make_window, qtbot, photos):
    window = make_window()
    drop_files(window, [photos["chelsea"]])
    assert "Open or create a project" in window.statusBar().currentMessage()
    assert not window.concepts_page.form.isVisible()


def test_new_concept_form_checks_what_it_sends(make_window, qtbot, tmp_path, photos):
    window = make_window(tmp_path / "P", create=True)
    drop_files(window, [photos["coffee"]])
    form = window.concepts_page.form
    assert form.class_edit.text() == ""  # "coffee" is no class word: the user says what it is
    assert not form.create_button.isEnabled() and "class word" in form.problem.text()
    form.token_edit.setText("<Bad Token>")
    form.class_edit.setText("mug")
    assert not form.create_button.isEnabled() and "token" in form.problem.text()
    qtbot.keyClick(form, Qt.Key.Key_Escape)
    assert not form.isVisible() and window.project.concepts() == []


def test_suggestions_avoid_names_and_tokens_in_use(photos):
    taken = suggest_concept([photos["cats"]], ["My cat photos"], ["<my-cat-photos>"])
    assert (taken.name, taken.token, taken.class_word) == (
        "My cat photos 2", "<my-cat-photos-2>", "cat")
    assert suggest_concept([photos["rocket"]], [], []).name == "Rocket"


def test_concept_page_follows_the_selection_while_a_field_has_focus(make_window, qtbot,
                                                                     tmp_path):
    with Project.create(tmp_path / "P", "P") as project:
        project.add_concept("Mochi", "cat")
        project.add_concept("Cup", "mug")
    window = make_window(tmp_path / "P")
    page = window.concepts_page.page
    window.state.selected_concept = 1
    page.name_edit.setFocus()
    qtbot.waitUntil(page.name_edit.hasFocus)
    window.state.selected_concept = 2
    assert (page.name_edit.text(), page.class_edit.text()) == ("Cup", "mug")
    page.name_edit.editingFinished.emit()  # leaving the field renames nothing
    assert [c.name for c in window.project.concepts()] == ["Mochi", "Cup"]
    page.name_edit.setText("Cuppa")
    page.name_edit.editingFinished.emit()
    assert window.project.concept(2).name == "Cuppa"
    assert "Cuppa" in window.concepts.item(1).text()
