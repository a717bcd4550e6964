"""What a new user hit on the second walk through the window (issue 26, items 4-7): Extract
keeps a box through a rename and takes typing after "Add a concept"; drops are copies and the
new concept's name comes from a photo, never from a refused file; Settings offers the
precision with its cost; and the small things (jobs panel, docks, status bar, the report, the
CP filter, the prompt completer, a brush stroke's journal entry, what a project remembers)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QPushButton

from engine.project import Project, Score
from engine.settings import load_settings

from qt_helpers import drag, wait_for_jobs  # isort: skip
from scoring_project import make_scoring_project  # isort: skip
from test_desktop_mask_editor import make_project as make_mask_project  # isort: skip
from test_desktop_mask_editor import view_point  # isort: skip


def _activate(qtbot, window) -> None:
    window.raise_()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=10_000)


# ---------------------------------------------------------------------- 4. Extract


def test_extract_keeps_a_box_through_a_rename_and_types_into_a_new_row(make_window, qtbot,
                                                                       tmp_path, photos):
    window = make_window(tmp_path / "p", create=True)
    page = window.extract_page
    window.steps.setCurrentWidget(page)
    page.use_file(photos["chelsea"])
    qtbot.waitUntil(lambda: not page.canvas.image.isNull(), timeout=20_000)
    _activate(qtbot, window)
    add = next(b for b in page.findChildren(QPushButton) if b.text() == "Add a concept")
    qtbot.mouseClick(add, Qt.MouseButton.LeftButton)
    # Typing right away names the new concept.
    QTest.keyClicks(QApplication.focusWidget(), "Mochi")
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.names() == [("Mochi", "")], timeout=5_000)  # a queued commit
    # A box drawn for it, then the concept renamed: the box stays with the row.
    canvas = page.canvas
    frame = canvas.frame()
    start = QPoint(int(frame.left() + 0.3 * frame.width()), int(frame.top() + 0.1 * frame.height()))
    end = QPoint(int(frame.left() + 0.9 * frame.width()), int(frame.top() + 0.9 * frame.height()))
    drag(canvas, [start, (start + end) / 2, end])
    assert "box" in page.concepts_param()[0]
    page.table.item(0, 0).setText("Mochi the cat")
    page.table.item(0, 1).setText("cat")
    concept = page.concepts_param()[0]
    assert concept["name"] == "Mochi the cat" and concept["class_word"] == "cat"
    w, h = page.photo_size
    box = [v / side for v, side in zip(concept["box"], (w, h, w, h), strict=True)]
    assert all(abs(a - b) < 0.02 for a, b in zip(box, (0.3, 0.1, 0.9, 0.9), strict=True))
    assert canvas.labels[canvas.names[0]] == "Mochi the cat"  # drawn under its new name


# ---------------------------------------------------------------------- 5. Drops


def _drop_offering_move(target, paths: list[Path],
                        pos: QPoint | None = None) -> tuple[bool, Qt.DropAction]:
    """A drop from a file manager that offers Copy and Move and proposes Move (Shift held):
    (accepted, the action the target chose)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    point = QPointF(pos if pos is not None else target.rect().center())
    actions = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    button, shift = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier
    enter = QDragEnterEvent(point.toPoint(), actions, mime, button, shift)
    QApplication.sendEvent(target, enter)
    move = QDragMoveEvent(point.toPoint(), actions, mime, button, shift)
    QApplication.sendEvent(target, move)
    assert move.proposedAction() == Qt.DropAction.MoveAction
    assert move.dropAction() == Qt.DropAction.CopyAction  # what the cursor shows meanwhile
    drop = QDropEvent(point, actions, mime, button, shift)
    QApplication.sendEvent(target, drop)
    return drop.isAccepted(), drop.dropAction()


def test_drops_are_copies_and_the_name_comes_from_a_photo(make_window, qtbot, tmp_path, photos,
                                                          bad_files):
    window = make_window(tmp_path / "p", create=True)
    form = window.concepts_page.form
    # On the window: a new concept. The text file named notes.jpg comes first, but it is no
    # photo: the name is the photo's.
    assert _drop_offering_move(window, [bad_files["text"], photos["chelsea"]]) == (
        True, Qt.DropAction.CopyAction)
    assert form.isVisible() and form.name_edit.text() == "Chelsea"
    assert form.class_edit.text() == "cat"  # from the photo's folder, "my cat photos"
    form.cancel()
    # On the concept list and on a concept's photos: copies too.
    with_concept = tmp_path / "q"
    with Project.create(with_concept, "q") as project:
        project.add_concept("Cup", "mug")
    window.open_project(with_concept)
    qtbot.waitUntil(lambda: window.concepts.count() == 1, timeout=10_000)
    window.state.selected_concept = window.project.concept_by_name("Cup").id
    grid = window.concepts_page.page.grid
    on_cup = window.concepts.visualItemRect(window.concepts.item(0)).center()
    assert _drop_offering_move(window.concepts.viewport(), [photos["coffee"]], on_cup) == (
        True, Qt.DropAction.CopyAction)
    assert not form.isVisible()  # it went into Cup
    wait_for_jobs(qtbot, window)
    assert len(window.project.photos(window.project.concept_by_name("Cup").id)) == 1
    assert _drop_offering_move(grid.viewport(), [photos["rocket"]]) == (
        True, Qt.DropAction.CopyAction)
    wait_for_jobs(qtbot, window)
    form.cancel()


# ---------------------------------------------------------------------- 6. Settings › precision


def test_settings_offer_the_precision_with_what_float32_costs(make_window, qtbot):
    from engine.device import CpuFacts, float32_cost, plan_device

    window = make_window()
    qtbot.waitUntil(lambda: window.float32_cost != "", timeout=60_000)  # the device-info job
    window.open_settings()
    dialog = window.settings_dialog
    assert dialog.precision.currentData() == "auto"
    assert [dialog.precision.itemData(i) for i in range(dialog.precision.count())] == [
        "auto", "float32"]
    cost = dialog.precision_note.text()
    assert cost == float32_cost(plan_device("cpu")) and cost.startswith(("No cost", "Slower"))
    assert dialog.precision_note.isVisible()
    dialog.precision.setCurrentIndex(dialog.precision.findData("float32"))
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    qtbot.mouseClick(ok, Qt.MouseButton.LeftButton)
    assert load_settings().precision == "float32" and window.settings.precision == "float32"
    # The device is planned again in the worker, in float32 now.
    qtbot.waitUntil(lambda: "as the settings ask" in window.device_label.toolTip(),
                    timeout=60_000)
    wait_for_jobs(qtbot, window)
    # The line follows the plan: a CPU with bf16 units pays in speed, one without pays nothing.
    bf16 = plan_device("cpu", cpu=CpuFacts("x86_64", ("avx512_bf16",)))
    assert float32_cost(bf16).startswith("Slower on this CPU: auto computes in bfloat16")
    assert float32_cost(plan_device("cpu", cpu=CpuFacts("x86_64", ()))).startswith("No cost")


# ---------------------------------------------------------------------- 7. Small things


def test_the_cp_filter_keeps_what_the_badges_show(make_window, qtbot, tmp_path):
    folder = make_scoring_project(tmp_path / "p")
    raw = [0.9651, 0.9749, 0.965, 0.9649]  # badges: 0.97, 0.97, 0.96 (0.965 is 0.96499…), 0.96
    with Project.open(folder) as project:
        for image, value in zip(project.gallery(sort="oldest"), raw, strict=True):
            project.replace_scores(image.id, [
                Score(generation_id=image.id, metric="cp-clip", value=value, model="tiny",
                      test_model=True)])
    window = make_window(folder)
    page = window.gallery_page
    window.steps.setCurrentWidget(page)
    assert page.model.rowCount() == 4

    def badges() -> list[str]:
        tips = [page.model.index(row).data(Qt.ItemDataRole.ToolTipRole)
                for row in range(page.model.rowCount())]
        return sorted(tip.split("CP-CLIP ", 1)[1].split(" ", 1)[0] for tip in tips)

    assert badges() == ["0.96", "0.96", "0.97", "0.97"]
    page.min_cp.setValue(0.97)
    assert badges() == ["0.97", "0.97"]
    page.min_cp.setValue(0.96)
    assert page.model.rowCount() == 4


def test_choosing_a_token_that_says_its_class_word_puts_it_in_once(qtbot):
    from desktop_app.widgets.prompt_edit import PromptEdit

    edit = PromptEdit()
    qtbot.addWidget(edit)
    edit.show()
    qtbot.waitExposed(edit)
    edit.set_concepts([("<cat>", "cat"), ("<mochi>", "cat")])
    edit.setFocus()
    qtbot.keyClicks(edit, "a <c")
    popup = edit.completer.popup()
    qtbot.waitUntil(popup.isVisible, timeout=5_000)
    assert edit.completer.currentCompletion() == "<cat>"
    popup.setCurrentIndex(edit.completer.completionModel().index(0, 0))
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert edit.text() == "a <cat>"
    qtbot.keyClicks(edit, " and <m")
    qtbot.waitUntil(popup.isVisible, timeout=5_000)
    popup.setCurrentIndex(edit.completer.completionModel().index(0, 0))
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert edit.text() == "a <cat> and <mochi> cat"


def test_a_report_no_browser_opens_is_said_and_its_folder_offered(make_window, qtbot, tmp_path,
                                                                  monkeypatch):
    folder = make_scoring_project(tmp_path / "p")
    window = make_window(folder)
    page = window.gallery_page
    window.steps.setCurrentWidget(page)
    asked: list[str] = []

    def nothing_registered(url) -> bool:  # what QDesktopServices answers without a browser
        asked.append(url.toLocalFile())
        return not url.toLocalFile().endswith(".html")

    monkeypatch.setattr(page, "open_url", nothing_registered)
    qtbot.mouseClick(page.report_button, Qt.MouseButton.LeftButton)
    wait_for_jobs(qtbot, window)
    report = Path(asked[0])
    assert report.suffix == ".html" and report.is_file()
    assert "No browser opened the report" in page.status.text()
    assert str(report) in page.status.text()
    assert page.report_folder_button.isVisible()
    qtbot.mouseClick(page.report_folder_button, Qt.MouseButton.LeftButton)
    assert asked[1:] == [str(report.parent)]


def test_a_brush_stroke_is_journaled_and_its_params_come_back(make_window, qtbot, tmp_path):
    from engine.segment.jobs import PaintMaskParams

    window = make_window(make_mask_project(tmp_path / "p"))
    tab, editor = window.concepts_page, window.concepts_page.editor
    tab.page.grid.itemClicked.emit(tab.page.grid.item(0))
    qtbot.waitUntil(lambda: not editor.canvas.mask.isNull(), timeout=30_000)
    editor.set_tool("brush")
    editor.brush_size.setValue(8)
    drag(editor.canvas.viewport(), [view_point(editor, 4, 4), view_point(editor, 40, 4)])
    qtbot.waitUntil(lambda: editor.undo_stack.count() == 1, timeout=240_000)
    wait_for_jobs(qtbot, window)
    entries = [e for e in window.project.journal() if e.name == "paint-mask"]
    assert [e.state for e in entries] == ["finished"]
    again = PaintMaskParams.from_dict(entries[0].params)  # what a resume would run
    assert again.mode == "add" and len(again.stroke) == again.stride * again.height
    assert any(again.stroke)


def test_a_project_reopens_on_its_step_and_preset(make_window, qtbot, tmp_path):
    window = make_window(tmp_path / "a", create=True)
    preset = window.personalize.preset
    window.steps.setCurrentWidget(window.gallery_page)
    preset.setCurrentIndex(preset.findData("best"))
    # Another project keeps its own: a new one starts on the first step with the first preset.
    window.create_project(tmp_path / "b")
    assert window.steps.currentIndex() == 0 and preset.currentData() == "quick"
    window.steps.setCurrentWidget(window.train_page)
    window.open_project(tmp_path / "a")
    assert window.steps.currentWidget() is window.gallery_page
    assert preset.currentData() == "best"
    window.close()
    # A new window (the app started again) too.
    again = make_window(tmp_path / "b")
    assert again.steps.currentWidget() is again.train_page
    assert again.personalize.preset.currentData() == "quick"
    again.open_project(tmp_path / "a")
    assert again.steps.currentWidget() is again.gallery_page
    assert again.personalize.preset.currentData() == "best"


def _inside(widget, area) -> bool:
    """Whether all of `widget` is within `area` (a widget it is inside of)."""
    top_left = widget.mapTo(area, QPoint(0, 0))
    return top_left.x() >= 0 and top_left.x() + widget.width() <= area.width()


def test_docks_and_the_status_bar_show_their_text_whole(make_window, qtbot, tmp_path,
                                                        monkeypatch):
    from engine.jobs.registry import target_overrides
    from engine.segment.jobs import SEGMENT

    # A model download that runs until cancelled: a row with its Cancel for as long as needed.
    monkeypatch.setitem(target_overrides, "ensure-models",
                        "desktop_jobs_for_tests:slow_models_job")
    with Project.create(tmp_path / "p", "p") as project:
        project.add_concept("Pink sunglasses", "sunglasses")
        project.add_concept("Mochi", "cat")
    window = make_window(tmp_path / "p")
    window.resize(1600, 1000)  # the display of the walk
    qtbot.waitUntil(lambda: window.concepts.count() == 2, timeout=10_000)
    # The jobs panel: no horizontal scroll; every row's text and Cancel within the dock.
    done = window.jobs.submit(SEGMENT, window.state.job_params(SEGMENT, concept=2))
    wait_for_jobs(qtbot, window)
    slow = window.jobs.submit("ensure-models", {"profile": "sd15"}, "Get the models of sd15")
    running = window.jobs_panel.rows[slow.job_id]
    qtbot.waitUntil(lambda: running.bar.value() >= 2, timeout=60_000)
    scroll = window.jobs_dock.widget()
    viewport = scroll.viewport()

    def all_inside() -> None:
        assert not scroll.horizontalScrollBar().isVisible()
        for row in (running, window.jobs_panel.rows[done.job_id]):
            for part in (row.title, row.state, row.bar, row.outcome, row.detail, row.more,
                         row.cancel):
                if part.isVisible():
                    assert _inside(part, viewport), (row.title.text(), part.objectName())
            assert row.state.width() >= row.state.fontMetrics().horizontalAdvance(
                row.state.text())  # "done", not "don"

    qtbot.wait(100)  # the layout settles
    all_inside()
    assert running.cancel.isVisible()
    # Narrowed by the user, the rows still fit: they wrap, nothing goes off the side.
    window.resizeDocks([window.jobs_dock], [200], Qt.Orientation.Horizontal)
    qtbot.wait(100)
    all_inside()
    window.jobs.cancel(slow.job_id)
    wait_for_jobs(qtbot, window)
    # The Concepts dock: each name on one line, whole.
    concepts = window.concepts
    for index in range(concepts.count()):
        item = concepts.item(index)
        name = item.text().split("\n", 1)[0]
        text_width = concepts.visualItemRect(item).width() - concepts.iconSize().width()
        assert concepts.fontMetrics().horizontalAdvance(name) < text_width, name
    # The status bar: a message of a long sentence is not hidden under the labels.
    bar = window.statusBar()
    message = ("No new photo added to Pink sunglasses: beach-2023-07-14-IMG_4411.jpg and "
               "beach-2023-07-14-IMG_4412.jpg were already in it (the same photos). "
               "Nothing else changed.")
    window.show_message(message)
    labels = [window.job_label, window.device_label, window.profile_label]
    room = min(label.geometry().left() for label in labels) - 12  # the message's margin
    assert bar.fontMetrics().horizontalAdvance(message) < room
    assert bar.currentMessage() == message and bar.toolTip() == message
