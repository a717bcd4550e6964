"""Issue 12, items 2, 3 and 10: the way in for a new user.

2. Without drag-and-drop: a start page (new, open, recent projects, a sample project), a
   welcome page for an empty project, "New concept from photos…" (menu, button, Ctrl+I) and
   pasting photos from the clipboard.
3. The class word is guessed from the folder a photo is in; the form says in plain words what
   a token and a class word are for.
10. An import's error rows go when another concept is chosen.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog

from desktop_app.pages.start_page import SAMPLE_CONCEPTS, sample_project_folder
from desktop_app.widgets.concept_drop import suggest_concept
from engine.project import Project
from engine.settings import Settings

from qt_helpers import drop_files, press_key, wait_for_jobs  # isort: skip


def test_with_no_project_the_start_page_offers_new_open_recent_and_the_sample(
        make_window, qtbot, tmp_path):
    known = tmp_path / "Garden"
    Project.create(known, "Garden").close()
    gone = tmp_path / "Gone"
    window = make_window()
    window.state.settings = Settings(profile="tiny", device="cpu",
                                     recent_projects=[str(known), str(gone)])
    window._fill_recent()
    start = window.start_page
    assert window.central.currentWidget() is start and not window.concepts_dock.isVisible()
    assert start.new_button.isVisible() and start.open_button.isVisible()
    assert start.sample_button.isVisible()
    assert start.recent.count() == 2 and "(not found)" in start.recent.item(1).text()
    assert not start.recent.item(1).flags() & Qt.ItemFlag.ItemIsEnabled
    start.recent.itemClicked.emit(start.recent.item(0))
    assert window.project is not None and window.project.name == "Garden"
    assert window.central.currentWidget() is window.project_view
    assert window.concepts_dock.isVisible()


def test_the_sample_project_is_made_from_the_bundled_photos(make_window, qtbot):
    window = make_window()
    qtbot.mouseClick(window.start_page.sample_button, Qt.MouseButton.LeftButton)
    folder = sample_project_folder()
    assert window.project is not None and window.project.root == folder.absolute()
    qtbot.waitUntil(lambda: window.concepts.count() == len(SAMPLE_CONCEPTS), timeout=240_000)
    wait_for_jobs(qtbot, window)
    with Project.open(folder) as project:
        concepts = project.concepts()
        assert [(c.name, c.class_word) for c in concepts] == [
            (s.name, s.class_word) for s in SAMPLE_CONCEPTS]
        assert all(len(project.current_masks(c.id)) == 1 for c in concepts)  # segmented
    window.close()
    again = make_window()
    again.open_sample_project()  # opened again, not made twice
    assert len(again.project.concepts()) == len(SAMPLE_CONCEPTS)


def test_an_empty_project_welcomes_and_a_concept_needs_no_drag_and_drop(
        make_window, qtbot, tmp_path, photos, monkeypatch):
    window = make_window(tmp_path / "P", create=True)
    page = window.concepts_page.page
    assert page.stack.currentWidget() is page.welcome and page.welcome.isVisible()
    assert "Start with photos" in page.welcome.text.text()
    chosen = [str(photos["chelsea"]), str(photos["chelsea-2"])]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: (chosen, ""))
    # The button on the welcome page ...
    qtbot.mouseClick(page.welcome.new_button, Qt.MouseButton.LeftButton)
    form = window.concepts_page.form
    assert form.isVisible() and form.files == [Path(p) for p in chosen]
    assert form.class_edit.text() == "cat"  # their folder is "my cat photos"
    form.cancel()
    # ... the menu item and its shortcut do the same.
    assert window.new_concept_action.shortcut().toString() == "Ctrl+I"
    assert window.new_concept_action in window.menuBar().actions()[1].menu().actions()
    assert window.new_concept_action in window.concepts.actions()  # its context menu
    press_key(qtbot, window, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(form.isVisible, timeout=5_000)
    form.name_edit.setText("Mochi")
    form.submit()
    qtbot.waitUntil(lambda: window.concepts.count() == 1 and page.grid.count() == 2,
                    timeout=240_000)
    wait_for_jobs(qtbot, window)


def test_pasting_an_image_or_copied_files(make_window, qtbot, tmp_path, photos):
    window = make_window(tmp_path / "P", create=True)
    form = window.concepts_page.form
    clipboard = QGuiApplication.clipboard()
    # An image copied in another program: a new concept (no concept is on show).
    clipboard.setImage(QImage(str(photos["coffee"])))
    window.paste_action.trigger()
    assert form.isVisible() and form.name_edit.text() == "Pasted image"
    form.name_edit.setText("Cup")
    form.class_edit.setText("mug")
    form.submit()
    qtbot.waitUntil(lambda: window.concepts.count() == 1, timeout=240_000)
    wait_for_jobs(qtbot, window)
    cup = window.project.concept_by_name("Cup")
    assert len(window.project.photos(cup.id)) == 1
    assert window.state.selected_concept == cup.id
    # Photo files copied in a file manager, pasted while Cup is on show: they join it.
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photos["rocket"]))])
    clipboard.setMimeData(mime)
    assert window.paste_action.shortcut().toString() == "Ctrl+V"
    window.paste_action.trigger()
    assert not form.isVisible()
    qtbot.waitUntil(lambda: len(window.project.photos(cup.id)) == 2, timeout=240_000)
    wait_for_jobs(qtbot, window)
    # An empty clipboard is said so, not an error.
    clipboard.clear()
    window.paste_action.trigger()
    assert "holds no photo" in window.statusBar().currentMessage()


def test_the_class_word_is_guessed_from_the_folder_a_photo_is_in(tmp_path, photos,
                                                                  make_window, qtbot):
    for word in ("cat", "mug"):
        (tmp_path / word).mkdir()
    cat = tmp_path / "cat" / "IMG_0001.jpg"
    cat.write_bytes(photos["chelsea-2"].read_bytes())
    mug = tmp_path / "mug" / "coffee.jpg"
    mug.write_bytes(photos["coffee"].read_bytes())
    guess = suggest_concept([cat], [], [])
    assert (guess.name, guess.class_word) == ("Cat", "cat")
    assert suggest_concept([mug], [], []).class_word == "mug"
    assert suggest_concept([tmp_path], [], []).class_word in {"cat", "mug"}  # its subfolders
    window = make_window(tmp_path / "P", create=True)
    drop_files(window, [mug])
    form = window.concepts_page.form
    assert form.class_edit.text() == "mug" and form.name_edit.text() == "Coffee"
    # What a token and a class word are for, in plain words, on the form itself.
    assert form.token_help.isVisible() and "made-up word" in form.token_help.text()
    assert form.class_help.isVisible() and "what kind of thing" in form.class_help.text().lower()
    form.cancel()


def test_an_import_error_row_goes_with_its_concept(make_window, qtbot, tmp_path, photos,
                                                    bad_files):
    with Project.create(tmp_path / "P", "P") as project:
        project.add_concept("Cup", "mug")
    window = make_window(tmp_path / "P")
    drop_files(window, [photos["chelsea"], bad_files["text"]])
    form = window.concepts_page.form
    form.name_edit.setText("Mochi")
    form.class_edit.setText("cat")
    form.submit()
    problems = window.concepts_page.problems
    qtbot.waitUntil(lambda: problems.count() == 1, timeout=240_000)
    mochi = window.project.concept_by_name("Mochi").id
    assert window.state.selected_concept == mochi
    assert window.concepts_page.problems_box.isVisible() and "notes.jpg" in \
        problems.item(0).text()
    window.state.selected_concept = window.project.concept_by_name("Cup").id
    assert not window.concepts_page.problems_box.isVisible() and problems.count() == 0
    wait_for_jobs(qtbot, window)
