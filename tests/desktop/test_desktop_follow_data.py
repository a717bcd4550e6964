"""Issue 12, item 1: every view follows the project's data, whoever changed it — the window,
a job in the worker, or another process (the CLI, a script) on the same project. One test per
page changes the data behind it and checks the page."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from engine.project import Project

from dataset_project import make_dataset_project  # isort: skip
from qt_helpers import wait_for_jobs  # isort: skip

REPO = Path(__file__).resolve().parents[2]
SEEN_MS = 15_000  # the window polls the catalogue four times a second


def another_process(folder: Path, code: str) -> str:
    """Run `code` with `project` open on `folder` in a separate Python process."""
    script = ("from engine.project import *\n"
              f"with Project.open({str(folder)!r}) as project:\n"
              + textwrap.indent(textwrap.dedent(code), "    "))
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def cli(*args: str) -> None:
    out = subprocess.run([sys.executable, "-m", "desktop_app.launcher", *args], cwd=REPO,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr


def test_concepts_from_the_window_and_the_cli_reach_the_list_and_the_planner(
        make_window, qtbot, tmp_path, photos):
    """The issue's first report: after adding two concepts the planner stayed disabled."""
    folder = tmp_path / "Pets"
    window = make_window(folder, create=True)
    layouts = window.layouts_page
    assert not layouts.plan_button.isEnabled()
    assert "at least two concepts" in layouts.plan_button.toolTip()
    # One concept made by the window (a job in the worker) ...
    window.concepts_page.import_new("Mochi", "<mochi>", "cat", [photos["chelsea"]])
    qtbot.waitUntil(lambda: window.concepts.count() == 1, timeout=240_000)
    wait_for_jobs(qtbot, window)  # its segmentation too: nothing of the window runs now
    assert not layouts.plan_button.isEnabled()
    # ... one by the command line, another process on the same project.
    cli("add-concept", str(folder), "Cup", "--class", "mug", str(photos["coffee"]))
    qtbot.waitUntil(lambda: window.concepts.count() == 2, timeout=SEEN_MS)
    assert "Cup" in window.concepts.item(1).text()
    assert layouts.plan_button.isEnabled() and layouts.plan_button.toolTip() == ""


def test_the_concept_page_follows_photos_and_masks_from_another_process(
        make_window, qtbot, tmp_path, photos):
    folder = make_dataset_project(tmp_path / "p")
    window = make_window(folder)
    page = window.concepts_page.page
    window.state.selected_concept = 2  # Cup: one photo
    assert page.grid.count() == 1 and "test-ellipse" in page.grid.item(0).text()
    page.grid.setCurrentRow(0)
    cli("add-concept", str(folder), "Cup", str(photos["rocket"]))
    qtbot.waitUntil(lambda: page.grid.count() == 2, timeout=SEEN_MS)
    assert "rocket.jpg" in page.grid.item(1).text() and "no mask yet" in page.grid.item(1).text()
    assert page.grid.currentRow() == 0  # the selection survives the reload
    assert "Cup" in window.concepts.item(1).text() and "2 photos" in window.concepts.item(1).text()
    another_process(folder, """
        photo = project.photos(2)[1]
        mask = project.current_masks(2)[project.photos(2)[0].id]
        project.add_mask(photo.id, 2, mask.file, "painted", cutout_file=mask.cutout_file)
    """)
    qtbot.waitUntil(lambda: "painted by you" in page.grid.item(1).text(), timeout=SEEN_MS)
    another_process(folder, "project.rename_concept(2, 'Cuppa')")
    qtbot.waitUntil(lambda: page.name_edit.text() == "Cuppa", timeout=SEEN_MS)
    assert "Cuppa" in window.concepts.item(1).text()


def test_the_mask_editor_follows_a_mask_made_elsewhere(make_window, qtbot, tmp_path):
    folder = make_dataset_project(tmp_path / "p")
    window = make_window(folder)
    editor = window.concepts_page.editor
    window.concepts_page.open_editor(4)  # the rocket's photo
    qtbot.waitUntil(lambda: not editor.canvas.mask.isNull(), timeout=30_000)
    first = editor.current.mask
    another_process(folder, """
        old = project.current_masks(3)[4]
        project.add_mask(4, 3, old.file, "painted", cutout_file=old.cutout_file)
    """)
    qtbot.waitUntil(lambda: editor.current.mask.id != first.id, timeout=SEEN_MS)
    assert editor.current.mask.method == "painted"
    qtbot.waitUntil(lambda: "changed outside the editor" in editor.status.text(),
                    timeout=SEEN_MS)
    # A photo removed elsewhere closes the editor instead of editing a ghost.
    another_process(folder, "project.delete_photo(4)")
    qtbot.waitUntil(lambda: editor.current is None, timeout=SEEN_MS)
    assert window.concepts_page.stack.currentWidget() is window.concepts_page.page


def test_the_layouts_page_follows_layouts_made_and_edited_elsewhere(make_window, qtbot,
                                                                     tmp_path):
    folder = make_dataset_project(tmp_path / "p")
    window = make_window(folder)
    page = window.layouts_page
    page.open_layout(2)
    assert page.layout_list.count() == 3 and page.scene_edit.text() == "a cosy living room"
    another_process(folder, """
        project.add_layout(Layout(scene="a snowy hut", source="script", objects=(
            LayoutObject(1, 0.1, 0.1, 0.3, 0.3, 0), LayoutObject(2, 0.5, 0.5, 0.3, 0.3, 1))))
        from dataclasses import replace
        project.update_layout(replace(project.layout(2), scene="a beach at dusk"))
    """)
    qtbot.waitUntil(lambda: page.layout_list.count() == 4, timeout=SEEN_MS)
    qtbot.waitUntil(lambda: page.scene_edit.text() == "a beach at dusk", timeout=SEEN_MS)
    assert page.document.layout.id == 2  # the open layout stays open
    assert "a beach at dusk" in page.layout_list.currentItem().text()


def test_the_dataset_page_follows_items_and_reviews_made_elsewhere(make_window, qtbot,
                                                                   tmp_path):
    folder = make_dataset_project(tmp_path / "p")
    window = make_window(folder)
    page = window.dataset_page
    assert page.counts.text() == "No dataset items yet." and not page.export_button.isEnabled()
    another_process(folder, """
        mask = project.masks()[1]
        for n in range(2):
            project.add_dataset_item(DatasetItem(image_file=mask.cutout_file,
                                                 caption=f"item {n}", masks={1: mask.file},
                                                 build_index=n))
    """)
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=SEEN_MS)
    assert page.counts.text().startswith("2 items:") and page.export_button.isEnabled()
    another_process(folder, "project.set_review_state(project.dataset_items()[0].id, "
                            "'rejected')")
    qtbot.waitUntil(lambda: "1 rejected by you" in page.counts.text(), timeout=SEEN_MS)
    assert page.model.items[0].review_state == "rejected"


def test_a_build_of_another_project_does_not_speak_for_this_one(make_window, qtbot, tmp_path):
    """The issue's second report: "No dataset items yet" right after "Done: 6 built" — the
    outcome of a build of the project left behind, shown on the project opened meanwhile."""
    first = make_dataset_project(tmp_path / "first")
    second = make_dataset_project(tmp_path / "second")
    window = make_window(first)
    page = window.dataset_page
    statuses: list[str] = []
    window.jobs.event.connect(lambda _e: statuses.append(page.status.text()))
    page.count.setValue(2)
    page.steps.setValue(2)
    page.build()
    qtbot.waitUntil(lambda: page.model.rowCount() >= 1, timeout=240_000)
    # the progress line every view shows (engine.jobs.progress_text): "50% · 0:12 left · ..."
    assert any(re.fullmatch(r"\d+% · .+ · building picture 1 of 2", s) for s in statuses), \
        statuses
    assert not any("(#" in s or "item 1/2" in s for s in statuses)
    window.open_project(second)
    assert page.counts.text() == "No dataset items yet."
    assert not page.build_button.isEnabled() and "another project" in page.build_button.toolTip()
    wait_for_jobs(qtbot, window)
    assert "Done" not in page.status.text() and page.status.text() == "Ready to build."
    assert page.build_button.isEnabled() and page.model.rowCount() == 0
    window.open_project(first)
    assert page.model.rowCount() == 2 and page.counts.text().startswith("2 items:")


def test_jobs_journal_reaches_the_jobs_list_on_open(make_window, tmp_path):
    """Item 4, checked again: on reopening, the interrupted job is named (resume bar) and the
    jobs list shows what ran before, the interrupted one marked so."""
    folder = tmp_path / "p"
    with Project.create(folder, "p") as project:
        project.journal_started("a1", "plan", "Plan 4 layouts", {"project": str(folder)})
        project.journal_ended("a1", "finished")
        project.journal_started("b2", "build-dataset", "Build the dataset (24 pictures)",
                                {"project": str(folder), "count": 24})
        project.journal_ended("b2", "interrupted", "The app was closed during it")
    window = make_window(folder)
    assert window.resume_bar.isVisible()
    assert "Build the dataset (24 pictures)" in window.resume_bar.label.text()
    rows = window.jobs_panel.rows
    assert rows["b2"].title.text() == "Build the dataset (24 pictures)"
    assert rows["b2"].state.text() == "interrupted"
    assert "The app was closed during it" in rows["b2"].outcome.text()
    assert rows["a1"].state.text() == "done" and rows["a1"].finished
    assert not rows["b2"].cancel.isVisible()
    window.jobs_panel.clear_button.click()
    assert "a1" not in rows and "b2" not in rows


def test_every_kind_of_change_a_job_declares_reaches_the_app_state(qapp):
    from desktop_app.state.observable import AppState
    from engine.jobs import declarations
    from engine.settings import Settings

    state = AppState(Settings())
    kinds = {kind for decl in declarations().values() for kind in decl.changes}
    for kind in kinds:
        before = getattr(state, f"{kind}_rev")
        state.touch(kind)
        assert getattr(state, f"{kind}_rev") == before + 1


def test_the_bridge_touches_what_a_job_changes_before_the_job_is_heard(make_window, qtbot,
                                                                      tmp_path):
    from engine.segment.jobs import SEGMENT

    window = make_window(make_dataset_project(tmp_path / "p"))
    window.watcher.timer.stop()  # only the bridge may tell the views here
    window.state.selected_concept = 2
    heard: list[tuple[str, int]] = []
    params = window.state.job_params(SEGMENT, concept=2, redo=True, method="fallback")
    before = window.state.photos_rev
    window.jobs.submit(SEGMENT, params, on_event=lambda e: heard.append(
        (type(e).__name__, window.state.photos_rev)))
    wait_for_jobs(qtbot, window)
    finished = [rev for name, rev in heard if name == "JobFinished"]
    assert finished and finished[0] > before  # the views had reloaded when the job was heard
    assert "GrabCut" in window.concepts_page.page.grid.item(0).text()


def test_the_gallery_follows_pictures_marked_trashed_and_rescored_elsewhere(make_window, qtbot,
                                                                            tmp_path):
    folder = make_dataset_project(tmp_path / "p")
    another_process(folder, """
        cutout = project.masks()[1].cutout_file
        for n in range(3):
            project.add_generation(Generation(prompt=f"picture {n}", seed=n, settings={},
                                              image_file=cutout))
    """)
    window = make_window(folder)
    page = window.gallery_page
    window.steps.setCurrentWidget(page)
    qtbot.waitUntil(lambda: page.model.rowCount() == 3, timeout=SEEN_MS)

    def shown(n: int):
        return next(i for i in page.model.images if i.generation.prompt == f"picture {n}")

    # Nothing added or removed: only marks change, which counting rows would miss.
    another_process(folder, "project.set_favourite(project.generations()[0].id)")
    qtbot.waitUntil(lambda: shown(0).generation.favourite, timeout=SEEN_MS)
    another_process(folder, """
        gen = project.generations()[1]
        project.replace_scores(gen.id, [Score(generation_id=gen.id, metric="ti-clip",
                                              value=0.25)])
    """)
    qtbot.waitUntil(lambda: shown(1).ti_clip == 0.25, timeout=SEEN_MS)
    another_process(folder, """
        gen = project.generations()[1]
        project.replace_scores(gen.id, [Score(generation_id=gen.id, metric="ti-clip",
                                              value=0.5)])
    """)
    qtbot.waitUntil(lambda: shown(1).ti_clip == 0.5, timeout=SEEN_MS)
    another_process(folder, "project.trash_generations(project.generations()[2].id)")
    qtbot.waitUntil(lambda: page.model.rowCount() == 2, timeout=SEEN_MS)
