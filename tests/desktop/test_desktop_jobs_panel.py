"""Issue 12, item 8: the jobs panel shows a job's note once and collapsed (not the same
GrabCut paragraph under every job), names jobs in plain words, and says why an import added
nothing (a duplicate)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from engine.segment.jobs import SEGMENT

from dataset_project import make_dataset_project  # isort: skip
from qt_helpers import wait_for_jobs  # isort: skip


def test_a_repeated_note_is_shown_once_and_collapsed(make_window, qtbot, tmp_path):
    window = make_window(make_dataset_project(tmp_path / "p"))
    handles = [window.jobs.submit(SEGMENT, window.state.job_params(
        SEGMENT, concept=cid, redo=True, method="fallback")) for cid in (2, 3)]
    wait_for_jobs(qtbot, window)
    first, second = (window.jobs_panel.rows[h.job_id] for h in handles)
    full = first.note_text
    assert full.startswith("Segmenter: Classical fallback (GrabCut)") and len(full) > 100
    # Collapsed to its first sentence; "more" shows the rest, "less" folds it again.
    shown = first.detail.text()
    assert shown.endswith("…") and len(shown) < len(full) and first.more.isVisible()
    qtbot.mouseClick(first.more, Qt.MouseButton.LeftButton)
    assert first.detail.text() == full and first.more.text() == "less"
    qtbot.mouseClick(first.more, Qt.MouseButton.LeftButton)
    assert first.detail.text() == shown
    # The second job's identical note is not repeated.
    assert second.detail.text() == "Segmenter (as above)" and not second.more.isVisible()
    assert full not in second.detail.text()
    for row in (first, second):
        assert row.state.text() == "done" and row.outcome.isVisible()


def test_jobs_are_named_in_plain_words_and_a_duplicate_is_explained(make_window, qtbot,
                                                                     tmp_path, photos):
    window = make_window(tmp_path / "P", create=True)
    page = window.concepts_page
    page.import_new("Mug", "<mug>", "mug", [photos["coffee"]])
    wait_for_jobs(qtbot, window)
    mug = window.project.concept_by_name("Mug").id
    page.import_into(mug, [photos["coffee"]])  # the same photo again
    wait_for_jobs(qtbot, window)
    rows = window.jobs_panel.rows.values()
    titles = [r.title.text() for r in rows]
    assert titles.count("Add 1 photo to Mug") == 2 and "Find Mug in the photos" in titles
    assert not any("photos to" in t or "(s)" in t for t in titles)
    again = [r for r in rows if r.title.text() == "Add 1 photo to Mug"][-1]  # the later one
    assert again.outcome.text() == ("No new photo added to Mug; coffee.jpg was already in it "
                                    "(the same photo).")
    assert window.statusBar().currentMessage() == again.outcome.text()
    assert len(window.project.photos(mug)) == 1


def test_a_failure_is_told_from_its_fields_not_its_prose(qtbot):
    """The window acts on an error's fields (engine.errors.ErrorFields): prose it cannot
    parse still gets the Models button and the window's words when the fields say a model
    role is missing."""
    from desktop_app.state.plain_words import MODELS_HINT, failure_text
    from desktop_app.widgets.jobs_panel import JobsPanel
    from engine.errors import ErrorFields
    from engine.jobs import JobFailed, JobQueued

    fields = ErrorFields(problem="The 'vae' model is not here.", missing_role="vae",
                         command="mycanvas models download sd15")
    prose = "Das Modell fehlt: mycanvas-Befehl siehe oben"  # nothing a pattern would find
    assert failure_text(prose, fields) == f"The 'vae' model is not here. {MODELS_HINT}"
    assert failure_text(prose) == prose
    panel = JobsPanel()
    qtbot.addWidget(panel)
    panel.show()
    panel.on_event(JobQueued("j1", "ensure-models", "Get the models"))
    panel.on_event(JobFailed("j1", prose, "", fields))
    row = panel.rows["j1"]
    assert not row.models.isHidden() and row.detail.text().startswith("The 'vae' model")
    assert "mycanvas" not in row.detail.text()
    panel.on_event(JobQueued("j2", "ensure-models", "Get the models"))
    panel.on_event(JobFailed("j2", prose))
    assert panel.rows["j2"].models.isHidden()


def test_a_missing_step_is_told_from_the_commands_field(tmp_path):
    """An error that names the command to run first (its `command` field) is told in the
    window as the step to do, with the CLI's message unchanged."""
    from desktop_app.state.plain_words import failure_text
    from engine.jobs import JobFailed, run_inline
    from engine.project import Project

    Project.create(tmp_path / "p", "Empty").close()
    end = run_inline("build-dataset", {"project": str(tmp_path / "p"), "profile": "tiny",
                                       "device": "cpu", "count": 1})
    assert isinstance(end, JobFailed)
    assert end.reason == "The project has no layouts yet: run `mycanvas plan` first"
    assert end.fields.command == "mycanvas plan"
    assert failure_text(end.reason, end.fields) == \
        "The project has no layouts yet. Plan layouts first (Layouts step)."
