"""One-click Personalize from the window on the tiny profile: from a project with only photos
the plan is shown first, then every stage runs and the gallery ends with scored pictures; a
cancel mid-chain, then Personalize again, finishes without redoing the finished stages and
without touching what the user accepted or rejected."""

from __future__ import annotations

from PySide6.QtCore import Qt

from engine.jobs import JobFinished, run_inline
from engine.project import Project

from qt_helpers import wait_for_jobs  # isort: skip


def photos_only_project(folder, photos) -> None:
    Project.create(folder, "Photos only").close()
    for concept, word, photo in (("Mochi", "cat", "chelsea"), ("Cup", "mug", "coffee"),
                                 ("Rocket", "toy rocket", "rocket")):
        end = run_inline("import-photos", {"project": str(folder), "concept": concept,
                                           "class_word": word, "paths": [str(photos[photo])]})
        assert isinstance(end, JobFinished)


def _plan(qtbot, window):
    bar = window.personalize
    qtbot.mouseClick(bar.button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bar.dialog is not None and bar.dialog.isVisible(), timeout=120_000)
    return bar.dialog


def _facts(folder):
    with Project.open(folder) as project:
        return {"masks": sorted(m.id for m in project.masks()),
                "layouts": sorted(lay.id for lay in project.layouts()),
                "items": {i.id: i.review_state for i in project.dataset_items()},
                "runs": [(r.id, r.status) for r in project.runs()],
                "pictures": project.gallery_count()}


def test_personalize_runs_every_stage_and_resumes_after_a_cancel(make_window, qtbot, tmp_path,
                                                                 photos):
    folder = tmp_path / "p"
    photos_only_project(folder, photos)
    window = make_window(folder)
    bar = window.personalize
    dialog = _plan(qtbot, window)
    stages = [dialog.table.item(r, 0).text() for r in range(dialog.table.rowCount())]
    assert len(stages) == 6 and "In all: about" in dialog.total.text()
    assert all(dialog.table.item(r, 1).text() != "nothing to do" for r in range(5))
    assert "Test models" in dialog.notes.text()
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Dataset" in bar.stage.toolTip()
                    and bool(window.project.dataset_items()),
                    timeout=240_000)
    qtbot.mouseClick(bar.cancel_button, Qt.MouseButton.LeftButton)
    wait_for_jobs(qtbot, window)
    assert bar.stage.text().startswith("Cancelled"), bar.stage.text()
    before = _facts(folder)
    assert before["masks"] and before["layouts"] and before["items"]
    assert before["pictures"] == 0
    # The user reviews what was built so far.
    ids = sorted(before["items"])
    with Project.open(folder) as project:
        project.set_review_state(ids[0], "accepted")
        if len(ids) > 1:
            project.set_review_state(ids[1], "rejected")
    window.state.touch("dataset")
    reviewed = _facts(folder)["items"]

    dialog = _plan(qtbot, window)
    done = {dialog.table.item(r, 0).text(): dialog.table.item(r, 1).text()
            for r in range(dialog.table.rowCount())}
    assert done["Find the concepts in their photos"].startswith("nothing to do")
    assert done["Plan layouts"].startswith("nothing to do")
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    wait_for_jobs(qtbot, window)
    after = _facts(folder)
    assert after["masks"] == before["masks"] and after["layouts"] == before["layouts"]
    assert all(after["items"][i] == state for i, state in reviewed.items())
    assert len(after["items"]) > len(before["items"])
    assert [status for _id, status in after["runs"]] == ["finished"]
    # The window ends on the gallery, with the chain's pictures scored.
    assert window.steps.currentWidget() is window.gallery_page
    gallery = window.gallery_page
    assert gallery.model.rowCount() == after["pictures"] > 0
    assert all(i.scored and i.guided for i in gallery.model.images)
