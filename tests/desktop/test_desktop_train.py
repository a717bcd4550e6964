"""The Train step on the tiny profile: a run started from the window draws its loss while it
trains (points arrive during the job, raw and smoothed, with the learning rate), its samples
fill the strip, the runs list shows it finished with its steps and dataset size; a cancelled
run resumes from the list with a time left at once; a run is deleted with its folder."""

from __future__ import annotations

from PySide6.QtCore import Qt

from desktop_app.widgets.train_chart import MetricsTail, history_eta
from engine.jobs import JobProgress
from engine.project import Project

from qt_helpers import wait_for_jobs  # isort: skip
from train_project import make_train_project  # isort: skip


def test_loss_chart_receives_points_while_training(make_window, qtbot, tmp_path):
    window = make_window(make_train_project(tmp_path / "p"))
    page = window.train_page
    window.steps.setCurrentWidget(page)
    assert page.start_button.isEnabled(), page.start_button.toolTip()
    page.form.set_values({"steps": 24, "sample_every": 8, "checkpoint_every": 8})
    seen: list[tuple[int, int]] = []  # (step of a progress event, points on the chart then)
    window.jobs.event.connect(lambda e: isinstance(e, JobProgress) and e.total == 24
                              and seen.append((e.step, page.chart.point_count())))
    qtbot.mouseClick(page.start_button, Qt.MouseButton.LeftButton)
    assert page.cancel_button.isEnabled() and not page.start_button.isEnabled()
    wait_for_jobs(qtbot, window)
    # Points arrived while the job was still stepping, not only at the end.
    assert any(points > 0 and step < 23 for step, points in seen), seen
    assert page.chart.point_count() == 24 and page.chart.smooth.count() == 24
    assert page.chart.lr.count() == 24
    assert page.samples.count() == 3  # steps 8, 16, 24
    qtbot.waitUntil(lambda: not page.samples.item(2).icon().isNull(), timeout=20_000)
    assert page.status.text().startswith("Done.")
    qtbot.waitUntil(lambda: page.runs.item(0, 2).text() == "24 / 24", timeout=20_000)
    assert page.runs.item(0, 1).text() == "finished"
    assert page.runs.item(0, 3).text() == "4 items"  # the accepted and auto-kept ones


def test_cancelled_run_resumes_with_a_time_left_at_once(make_window, qtbot, tmp_path):
    folder = make_train_project(tmp_path / "p")
    window = make_window(folder)
    page = window.train_page
    page.form.set_values({"steps": 400, "sample_every": 0, "checkpoint_every": 5})
    page.start()
    qtbot.waitUntil(lambda: page.chart.point_count() >= 6, timeout=240_000)
    page.cancel()
    wait_for_jobs(qtbot, window)
    assert page.status.text().startswith("Cancelled")
    run = window.project.runs()[-1]
    assert run.status == "cancelled"
    page.runs.selectRow(0)
    assert page.resume_button.isEnabled()
    qtbot.mouseClick(page.resume_button, Qt.MouseButton.LeftButton)
    # Before the resumed job has timed one step, the time left comes from the run's own
    # recorded step times.
    assert page.eta.text().endswith("left"), page.eta.text()
    page.cancel()
    wait_for_jobs(qtbot, window)


def test_history_eta_uses_the_recorded_step_times():
    records = [{"step": s, "loss": 1.0, "seconds": 0.5} for s in range(1, 11)]
    records.append({"step": 10, "sample": "samples/x.png"})
    assert history_eta(records, 10, 110) == 50.0
    assert history_eta([], 0, 10) is None


def test_metrics_tail_reads_only_what_was_added(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.read_new() == []
    path.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo')
    assert [r["step"] for r in tail.read_new()] == [1]
    with open(path, "a") as f:
        f.write('ss": 0.5}\n')
    assert tail.read_new() == [{"step": 2, "loss": 0.5}]
    path.write_text('{"step": 1, "loss": 2.0}\n')  # cut back by a resume
    assert tail.read_new() == [{"step": 1, "loss": 2.0}]


def test_delete_a_run(make_window, qtbot, tmp_path, monkeypatch):
    folder = make_train_project(tmp_path / "p")
    from engine.jobs import JobFinished, run_inline

    end = run_inline("train", {"project": str(folder), "profile": "tiny", "device": "cpu",
                               "config": {"steps": 2, "sample_every": 0}})
    assert isinstance(end, JobFinished)
    window = make_window(folder)
    page = window.train_page
    assert page.runs.rowCount() == 1
    page.runs.selectRow(0)
    monkeypatch.setattr(page, "confirm_delete", lambda run: True)
    qtbot.mouseClick(page.delete_button, Qt.MouseButton.LeftButton)
    assert page.runs.rowCount() == 0
    assert not (folder / "runs" / str(end.result.run_id)).exists()
    with Project.open(folder) as project:
        assert project.runs() == []
