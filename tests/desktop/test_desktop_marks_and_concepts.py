"""Ratings, the trash, concept rename/delete and Extract's question, in the window (real
widgets, the tiny profile): keys 0-5 rate the selected pictures with undo and the tiles and
large view show the stars; the Trash view restores and empties after a confirmation; the
Concepts page renames the token and deletes a concept with what was made from it after a
confirmation that counts what goes, refused while a job uses it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPainter, QTextDocument
from PySide6.QtWidgets import QLabel, QStyleOptionViewItem

from engine.project import Project

from qt_helpers import wait_for_jobs  # isort: skip
from scoring_project import make_scoring_project  # isort: skip


def _select(page, ids: list[int]) -> None:
    selection = page.grid.selectionModel()
    selection.clearSelection()
    for gid in ids:
        selection.select(page.model.index(page.model.row_of(gid)),
                         selection.SelectionFlag.Select)


def _ratings(folder, ids) -> list:
    with Project.open(folder) as project:
        return [project.generation(g).rating for g in ids]


def _tile(page, gid: int) -> QImage:
    """The tile of picture `gid` as the grid's delegate paints it."""
    index = page.model.index(page.model.row_of(gid))
    delegate = page.grid.itemDelegate()
    option = QStyleOptionViewItem()
    size = delegate.sizeHint(option, index)
    option.rect = page.grid.visualRect(index).translated(-page.grid.visualRect(index).topLeft())
    option.rect.setSize(size)
    image = QImage(size, QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    delegate.paint(painter, option, index)
    painter.end()
    return image


def test_keys_rate_the_selected_pictures_with_undo_and_the_stars_show(make_window, qtbot,
                                                                    tmp_path):
    folder = make_scoring_project(tmp_path / "p")
    window = make_window(folder)
    page = window.gallery_page
    window.steps.setCurrentWidget(page)
    two = [page.model.images[0].id, page.model.images[1].id]
    unrated_tile = _tile(page, two[0])
    _select(page, two)
    page.grid.setFocus()
    qtbot.keyClick(page.grid, Qt.Key.Key_4)
    assert _ratings(folder, two) == [4, 4]
    assert "Rated 2 pictures ★★★★" in page.status.text()
    image = page.model.images[page.model.row_of(two[0])]
    assert image.generation.rating == 4  # the grid read it again
    assert _tile(page, two[0]) != unrated_tile  # the stars are painted on the tile
    assert "rated ★★★★" in page.model.index(page.model.row_of(two[0])).data(
        Qt.ItemDataRole.ToolTipRole)
    _select(page, two[:1])
    qtbot.keyClick(page.grid, Qt.Key.Key_2)
    qtbot.keyClick(page.grid, Qt.Key.Key_0)  # clears
    assert _ratings(folder, two) == [None, 4]
    qtbot.mouseClick(page.undo_button, Qt.MouseButton.LeftButton)
    assert _ratings(folder, two) == [2, 4]
    qtbot.mouseClick(page.undo_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(page.undo_button, Qt.MouseButton.LeftButton)
    assert _ratings(folder, two) == [None, None]

    # The large view shows the stars, and its keys rate the picture on show.
    dialog = page._dialog([page.model.images[page.model.row_of(two[1])]])
    assert "not rated" in dialog.rating.text()
    qtbot.keyClick(dialog, Qt.Key.Key_5)
    assert _ratings(folder, two) == [None, 5]
    assert dialog.rating.text().startswith("★★★★★")
    dialog.close()
    again = page._dialog([page.model.images[page.model.row_of(two[1])]])
    assert "★★★★★" in again.panels[0].scores.text()
    again.close()
    qtbot.mouseClick(page.undo_button, Qt.MouseButton.LeftButton)
    assert _ratings(folder, two) == [None, None]


def test_the_trash_view_restores_and_empties_after_asking(make_window, qtbot, tmp_path):
    folder = make_scoring_project(tmp_path / "p")
    window = make_window(folder)
    page = window.gallery_page
    window.steps.setCurrentWidget(page)
    ids = [i.id for i in page.model.images]
    _select(page, ids[:3])
    qtbot.mouseClick(page.delete_button, Qt.MouseButton.LeftButton)
    assert page.model.rowCount() == 1
    page.undo_stack.clear()  # the window's undo history is gone: the trash view remains
    qtbot.mouseClick(page.trash_button, Qt.MouseButton.LeftButton)
    trash = page.trash
    assert sorted(trash.ids()) == sorted(ids[:3]) and "3 deleted pictures" in \
        trash.status.text()
    trash.list.item(0).setSelected(True)
    back = trash.selected_ids()
    qtbot.mouseClick(trash.restore_button, Qt.MouseButton.LeftButton)
    assert page.model.rowCount() == 2 and len(trash.ids()) == 2
    assert page.model.row_of(back[0]) is not None

    asked: list[int] = []
    trash.confirm_empty = lambda count: asked.append(count) or False  # "No"
    qtbot.mouseClick(trash.empty_button, Qt.MouseButton.LeftButton)
    with Project.open(folder) as project:
        assert asked == [2] and project.trash_count() == 2
    trash.confirm_empty = lambda count: asked.append(count) or True
    qtbot.mouseClick(trash.empty_button, Qt.MouseButton.LeftButton)
    with Project.open(folder) as project:
        assert project.trash_count() == 0 and len(project.generations()) == 2
    assert trash.ids() == [] and "The trash is empty" in trash.status.text()
    assert not trash.empty_button.isEnabled()
    trash.close()


def _concept_view(window, folder, token: str):
    with Project.open(folder) as project:
        cid = next(c.id for c in project.concepts() if c.token == token)
    window.state.selected_concept = cid
    view = window.concepts_page.page
    assert view.concept_id == cid
    return view, cid


def test_rename_changes_the_token_and_says_what_runs_keep(make_window, qtbot, tmp_path):
    folder = make_scoring_project(tmp_path / "p")
    window = make_window(folder)
    view, cid = _concept_view(window, folder, "<mochi>")
    said: list[str] = []
    view.message.connect(said.append)
    dialog = view.open_rename()
    note = dialog.findChild(QLabel, "conceptRenameNote")
    assert "Runs already trained keep the token they were trained on" in note.text()
    dialog.name_edit.setText("Kitty")
    dialog.token_edit.setText("<kitty>")
    dialog.accept()
    with Project.open(folder) as project:
        concept = project.concept(cid)
        assert (concept.name, concept.token) == ("Kitty", "<kitty>")
    assert view.token_label.text() == "<kitty>" and "Runs already trained keep <mochi>" in said[-1]
    dialog = view.open_rename()
    dialog.token_edit.setText("<cup>")  # taken: said, nothing changed
    dialog.accept()
    assert "already used" in said[-1]
    with Project.open(folder) as project:
        assert project.concept(cid).token == "<kitty>"


def test_delete_asks_with_counts_refuses_while_a_job_uses_it_then_deletes(make_window, qtbot,
                                                                          tmp_path):
    folder = make_scoring_project(tmp_path / "p")
    window = make_window(folder)
    view, cid = _concept_view(window, folder, "<mochi>")
    said: list[str] = []
    view.message.connect(said.append)
    asked: list[str] = []

    def answer(yes: bool):
        def ask(box) -> bool:
            shown = QTextDocument()  # as the box renders it: a <token> must not vanish
            shown.setHtml(f"<p>{box.text()}</p>{box.informativeText()}")
            assert box.textFormat() == Qt.TextFormat.RichText
            asked.append(shown.toPlainText())
            return yes
        return ask

    # A job running on the project's data (its journal row, owned by a live process).
    with Project.open(folder) as project:
        project.journal_started("busy", "build-dataset", "Build the dataset",
                                {"project": str(folder)})
    view.ask = answer(True)
    qtbot.mouseClick(view.delete_button, Qt.MouseButton.LeftButton)
    assert asked == [] and "while a job runs" in said[-1] and "Build the dataset" in said[-1]
    with Project.open(folder) as project:
        project.journal_ended("busy", "finished")
        assert cid in [c.id for c in project.concepts()]

    view.ask = answer(False)  # "Keep it"
    qtbot.mouseClick(view.delete_button, Qt.MouseButton.LeftButton)
    assert "2 photos" in asked[-1] and "4 masks" in asked[-1] and "3 layouts" in asked[-1]
    assert "stay in the gallery" in asked[-1] and "Delete the concept Mochi <mochi>?" in asked[-1]
    with Project.open(folder) as project:
        assert cid in [c.id for c in project.concepts()]

    view.ask = answer(True)
    qtbot.mouseClick(view.delete_button, Qt.MouseButton.LeftButton)
    with Project.open(folder) as project:
        assert [c.token for c in project.concepts()] == ["<cup>", "<rocket>"]
        assert project.layouts() == [] and project.photos(cid) == []
    assert "Deleted Mochi <mochi>" in said[-1]
    assert window.concepts.count() == 2  # the concept list followed


def test_extract_asks_before_adding_new_concepts(make_window, qtbot, tmp_path, photos):
    folder = tmp_path / "p"
    window = make_window(folder, create=True)
    page = window.extract_page
    window.steps.setCurrentWidget(page)
    page.use_file(photos["chelsea"])
    qtbot.waitUntil(lambda: not page.canvas.image.isNull(), timeout=20_000)
    page.add_concept("Mochi", "cat")
    page.canvas.set_box(page.row_key(0), (0.3, 0.05, 0.95, 0.95))
    page.steps.setValue(2)
    page.rounds.setValue(1)
    asked: list[list[str]] = []

    def answer(choice):
        return lambda names: asked.append(names) or choice

    page.ask_add_concepts = answer(None)  # Cancel: nothing starts
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert asked == [["Mochi"]] and page.job is None and window.project.runs() == []

    page.ask_add_concepts = answer("keep-in-run")
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    wait_for_jobs(qtbot, window)
    assert "kept only inside this run" in page.status.text(), page.status.text()
    assert window.project.concepts() == [] and window.concepts.count() == 0
    assert [r.status for r in window.project.runs("em-extract")] == ["finished"]
    assert not page.fix_button.isEnabled()

    page.ask_add_concepts = answer("add")
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    wait_for_jobs(qtbot, window)
    assert [c.name for c in window.project.concepts()] == ["Mochi"]
    assert window.concepts.count() == 1 and len(asked) == 3
    # Known concepts are not asked about again.
    qtbot.mouseClick(page.again_button, Qt.MouseButton.LeftButton)
    wait_for_jobs(qtbot, window)
    assert len(asked) == 3
