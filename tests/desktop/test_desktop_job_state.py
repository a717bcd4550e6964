"""Issue 26 item 1 and issue 25 item 4: the Train page shows the training job on its project
however it was started (the resume bar, another process), never offers to start a second one
beside it, and reads the job from the same JobState as the jobs list; a job's write is
announced to the views once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt

from engine.jobs import CancelToken, JobProgress, JobQueued, run_inline
from engine.jobs.journal import JournalWriter
from engine.jobs.registry import target_overrides
from engine.project import Project
from engine.train import run_owner

from qt_helpers import wait_for_jobs  # isort: skip
from train_project import make_train_project  # isort: skip

REPO = Path(__file__).resolve().parents[2]
CONFIG = {"steps": 400, "sample_every": 0, "checkpoint_every": 2}


def interrupted_run(folder: Path) -> int:
    """A run cut short as when the window quits during it: its journal row says interrupted
    (offered by the resume bar), the run keeps its checkpoints."""
    journal, token = JournalWriter(), CancelToken()

    def sink(event) -> None:
        journal(event)
        if isinstance(event, JobProgress) and event.total == 400 and event.step >= 4:
            journal.interrupt_all()
            token.cancel()

    run_inline("train", {"project": str(folder), "profile": "tiny", "device": "cpu",
                         "config": CONFIG}, sink, token)
    journal.close()
    with Project.open(folder) as project:
        run = project.runs()[-1]
        assert run.status == "cancelled" and project.interrupted_jobs()
        return run.id


def steps_shown(page) -> str:
    return page.runs.item(0, 2).text()


def test_a_run_resumed_from_the_resume_bar_is_shown_and_not_started_twice(
        make_window, qtbot, tmp_path):
    folder = make_train_project(tmp_path / "p")
    run_id = interrupted_run(folder)
    window = make_window(folder)
    page = window.train_page
    window.steps.setCurrentWidget(page)
    old_steps = steps_shown(page)
    chosen = page.form.value("steps")
    assert chosen != CONFIG["steps"]  # the preset's, not the run's
    queued: list[JobQueued] = []
    window.jobs.event.connect(lambda e: isinstance(e, JobQueued) and e.name == "train"
                              and queued.append(e))
    assert window.resume_bar.isVisible()
    qtbot.mouseClick(window.resume_bar.resume_button, Qt.MouseButton.LeftButton)
    # The page shows the resumed job at once, and offers no second run beside it.
    assert page.status.text() == f"Resuming run {run_id}…", page.status.text()
    assert not page.start_button.isEnabled() and page.cancel_button.isEnabled()
    assert not page.resume_button.isEnabled()
    # The form shows the settings the run trains with, read-only while it trains.
    assert page.form.value("steps") == CONFIG["steps"] and not page.form.isEnabled()
    assert not page.preset.isEnabled()
    # Its chart, its row and its progress move while it trains.
    before = page.chart.point_count()
    qtbot.waitUntil(lambda: page.chart.point_count() > before + 2, timeout=240_000)
    qtbot.waitUntil(lambda: steps_shown(page) != old_steps, timeout=30_000)
    qtbot.waitUntil(lambda: page.status.text().startswith(f"Training run {run_id}:"),
                    timeout=30_000)
    # Start does nothing while it runs (only one train job was ever queued).
    page.start()
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert len(queued) == 1
    # The page and the jobs list show the job from one object: the same step, time left
    # and message, whatever the job reports next.
    job = page.job_state
    row = window.jobs_panel.rows[job.job_id]
    assert row.job_state is job
    job.apply(JobProgress(job.job_id, 7, 400, 12.0, "step 7/400"))
    assert page.eta.text() == row.state.text() == job.eta == "0:12 left"
    assert page.bar.value() == row.bar.value() == 7
    assert page.status.text() == f"Training run {run_id}: step 7/400"
    assert row.bar.format().endswith("step 7/400")
    # Cancelling it ends it on the page too.
    qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    wait_for_jobs(qtbot, window)
    assert page.status.text().startswith("Cancelled."), page.status.text()
    assert page.start_button.isEnabled() and not page.cancel_button.isEnabled()
    assert len(queued) == 1
    # ... and the form the user had comes back, editable.
    assert page.form.value("steps") == chosen and page.form.isEnabled()


def test_a_run_trained_by_another_process_is_followed_and_not_started_again(
        make_window, qtbot, tmp_path):
    folder = make_train_project(tmp_path / "p")
    window = make_window(folder)
    page = window.train_page
    window.steps.setCurrentWidget(page)
    assert page.start_button.isEnabled()
    trainer = subprocess.Popen(
        [sys.executable, "-m", "desktop_app.launcher", "train", str(folder), "--profile",
         "tiny", "--device", "cpu", "--steps", "400", "--sample-every", "0"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        qtbot.waitUntil(lambda: "training elsewhere" in page.status.text(), timeout=240_000)
        assert f"process {trainer.pid}" in page.status.text()
        assert not page.start_button.isEnabled()
        assert page.start_button.toolTip() == "Run 1 is training now: wait for it to end."
        assert page.form.value("steps") == 400 and not page.form.isEnabled()  # its settings
        page.runs.selectRow(0)
        assert not page.resume_button.isEnabled() and not page.delete_button.isEnabled()
        qtbot.waitUntil(lambda: page.chart.point_count() >= 3, timeout=240_000)
    finally:
        trainer.terminate()
        trainer.wait(60)
    # The trainer died without a word (its run still says "running", with no owner): the
    # page lets go of it, and says so.
    qtbot.waitUntil(lambda: "training elsewhere" not in page.status.text(), timeout=15_000)
    assert page.status.text().startswith("Run 1 stopped: the process that trained it ended")
    assert page.start_button.isEnabled() and not page.timer.isActive()
    assert page.form.isEnabled() and page.form.value("steps") != 400  # the user's again
    with Project.open(folder) as project:
        assert run_owner(project, 1) is None


def test_personalizes_training_shows_on_the_train_page(make_window, qtbot, tmp_path,
                                                      monkeypatch):
    monkeypatch.setitem(target_overrides, "personalize",
                        "desktop_jobs_for_tests:personalize_trains_job")
    folder = make_train_project(tmp_path / "p")
    window = make_window(folder)
    page = window.train_page
    window.steps.setCurrentWidget(page)
    window.personalize.start()
    qtbot.waitUntil(lambda: "as part of Personalize" in page.status.text(), timeout=240_000)
    assert page.status.text().startswith("Run 1 is training as part of Personalize.")
    assert not page.start_button.isEnabled() and not page.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: page.chart.point_count() >= 2, timeout=240_000)
    window.personalize.cancel()
    wait_for_jobs(qtbot, window)
    qtbot.waitUntil(lambda: page.status.text() == "Run 1 trained elsewhere is cancelled.",
                    timeout=15_000)
    assert page.start_button.isEnabled()


def test_a_finished_jobs_write_is_announced_once(make_window, qtbot, tmp_path):
    folder = make_train_project(tmp_path / "p")
    window = make_window(folder)
    window.watcher.timer.stop()  # its polls come when the test says
    revisions: list[int] = []
    window.state.runs_rev_changed.connect(revisions.append)
    window.train_page.form.set_values({"steps": 2, "sample_every": 0})
    window.train_page.start()
    wait_for_jobs(qtbot, window)
    assert window.train_page.status.text().startswith("Done."), window.train_page.status.text()
    announced = len(revisions)
    assert announced >= 1  # the job's end told the views
    window.watcher.poll()  # the same commits, seen by the watcher: not announced again
    assert len(revisions) == announced


def test_an_extraction_resumed_from_the_resume_bar_is_shown_by_the_extract_page(
        make_window, qtbot, tmp_path, photos):
    folder = tmp_path / "p"
    Project.create(folder, "Extract").close()
    journal, token = JournalWriter(), CancelToken()

    def sink(event) -> None:
        journal(event)
        if isinstance(event, JobProgress) and event.total == 400 and event.step >= 3:
            journal.interrupt_all()
            token.cancel()

    run_inline("extract", {"project": str(folder), "photo": str(photos["chelsea"]),
                           "profile": "tiny", "device": "cpu", "segment_method": "fallback",
                           "concepts": [{"name": "Mochi", "class_word": "cat",
                                         "box": [100, 10, 440, 290]}],
                           "config": {"steps": 400, "iterations": 4, "checkpoint_every": 2}},
               sink, token)
    journal.close()
    window = make_window(folder)
    page = window.extract_page
    window.steps.setCurrentWidget(page)
    assert page.job is None and page.status.text().startswith("Choose a photo")
    qtbot.mouseClick(window.resume_bar.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.job is not None, timeout=5_000)
    assert not page.start_button.isEnabled() and page.cancel_button.isEnabled()
    # Its progress, from the JobState the jobs list shows too.
    job = page.jobs.states[page.job]
    assert window.jobs_panel.rows[job.job_id].job_state is job
    qtbot.waitUntil(lambda: job.line != "" and page.status.text() == job.line,
                    timeout=240_000)
    qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
    wait_for_jobs(qtbot, window)
    assert page.status.text().startswith("Cancelled."), page.status.text()
    assert page.job is None and not page.cancel_button.isEnabled()


def test_pictures_resumed_from_the_resume_bar_are_shown_by_the_generate_page(
        make_window, qtbot, tmp_path):
    folder = make_train_project(tmp_path / "p")
    trained = run_inline("train", {"project": str(folder), "profile": "tiny", "device": "cpu",
                                   "config": {"steps": 2, "sample_every": 0}})
    journal, token = JournalWriter(), CancelToken()

    def sink(event) -> None:
        journal(event)
        if isinstance(event, JobProgress) and event.step >= 1:
            journal.interrupt_all()
            token.cancel()

    run_inline("generate", {"project": str(folder), "profile": "tiny", "device": "cpu",
                            "run_id": trained.result.run_id, "prompt": "<mochi> cat",
                            "count": 3, "steps": 3, "seed": 1}, sink, token)
    journal.close()
    window = make_window(folder)
    page = window.generate_page
    window.steps.setCurrentWidget(page)
    assert page.job is None and page.generate_button.isEnabled()
    qtbot.mouseClick(window.resume_bar.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.job is not None, timeout=5_000)
    assert not page.generate_button.isEnabled() and page.cancel_button.isEnabled()
    job = page.jobs.states[page.job]
    qtbot.waitUntil(lambda: job.line != "" and page.status.text() == job.line,
                    timeout=240_000)
    wait_for_jobs(qtbot, window)
    assert page.status.text().endswith("They are in the Gallery."), page.status.text()
    assert page.job is None and page.generate_button.isEnabled()
