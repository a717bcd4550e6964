"""Jobs: typed events, ETA, cancellation, failures, and the worker process."""

from __future__ import annotations

import os
import time

import pytest

from engine.errors import MyCanvasError
from engine.jobs import (
    CancelToken,
    EtaEstimator,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobLog,
    JobPreview,
    JobProgress,
    JobQueued,
    JobStarted,
    register_job,
    run_inline,
)
from engine.jobs.worker import JobRunner

for _name in ("count", "warm", "fail", "oom", "die", "stubborn", "preview", "project-items"):
    register_job(f"test-{_name}", f"jobs_for_tests:{_name.replace('-', '_')}_job")


# --------------------------------------------------------------------------- inline


def test_inline_job_emits_started_progress_finished_in_order():
    events = []
    end = run_inline("test-count", {"steps": 4}, events.append, title="Counting")
    assert isinstance(end, JobFinished) and end.result == 4
    assert isinstance(events[0], JobStarted) and events[0].title == "Counting"
    progress = [e for e in events if isinstance(e, JobProgress)]
    assert [p.step for p in progress] == [1, 2, 3, 4]
    assert all(p.total == 4 for p in progress)
    assert progress[-1].eta_seconds == pytest.approx(0.0, abs=1e-6)
    assert events[-1] is end


def test_inline_cancel_is_recorded_as_cancelled_not_failed():
    token = CancelToken()
    events = []

    def sink(e):
        events.append(e)
        if isinstance(e, JobProgress) and e.step == 2:
            token.cancel()

    end = run_inline("test-count", {"steps": 10}, sink, token)
    assert isinstance(end, JobCancelled)
    assert not any(isinstance(e, JobFailed) for e in events)
    assert max(e.step for e in events if isinstance(e, JobProgress)) == 2


def test_inline_failure_has_readable_reason_and_traceback_detail():
    end = run_inline("test-fail", {"readable": True})
    assert isinstance(end, JobFailed)
    assert end.reason == "The photo cat.png is not an image"
    assert "Traceback" in end.detail
    end = run_inline("test-fail", {"readable": False})
    assert end.reason == "Unexpected ValueError: list index out of range"


def test_inline_out_of_memory_reason():
    end = run_inline("test-oom")
    assert isinstance(end, JobFailed)
    assert end.reason.startswith("Out of memory.")


def test_unknown_job_name_is_a_clear_error():
    with pytest.raises(MyCanvasError, match="Unknown job 'nope'"):
        run_inline("nope")


def test_preview_is_downscaled_png():
    events = []
    run_inline("test-preview", {}, events.append)
    preview = next(e for e in events if isinstance(e, JobPreview))
    assert preview.png.startswith(b"\x89PNG")
    from io import BytesIO

    from PIL import Image

    img = Image.open(BytesIO(preview.png))
    assert max(img.size) == 512 and img.size == (512, 256)
    assert any(isinstance(e, JobLog) and "preview" in e.text for e in events)


def test_eta_uses_moving_average_of_step_time():
    now = [0.0]
    eta = EtaEstimator(smoothing=0.5, clock=lambda: now[0])
    assert eta.update(0, 10) is None
    now[0] = 2.0
    assert eta.update(1, 10) == pytest.approx(18.0)  # 2 s/step, 9 steps left
    now[0] = 3.0
    assert eta.update(2, 10) == pytest.approx(8 * 1.5)  # average of 2 s and 1 s


# --------------------------------------------------------------------------- worker


@pytest.fixture
def runner():
    r = JobRunner()
    yield r
    r.shutdown()


def test_worker_runs_jobs_in_another_process_and_keeps_cache_warm(runner):
    first = runner.submit("test-warm").wait(60)
    second = runner.submit("test-warm").wait(60)
    assert isinstance(first, JobFinished) and isinstance(second, JobFinished)
    assert first.result["pid"] != os.getpid()
    assert first.result["pid"] == second.result["pid"]
    assert (first.result["runs"], second.result["runs"]) == (1, 2)


def test_worker_events_arrive_typed_and_in_order(runner):
    seen = []
    runner.add_listener(seen.append)
    handle = runner.submit("test-count", {"steps": 3}, title="Count to three")
    assert isinstance(handle.wait(60), JobFinished)
    kinds = [type(e) for e in handle.events]
    assert kinds[:2] == [JobQueued, JobStarted]
    assert kinds[-1] is JobFinished
    assert [e.step for e in handle.events if isinstance(e, JobProgress)] == [1, 2, 3]
    assert [e for e in seen if e.job_id == handle.job_id] == handle.events


def test_worker_cancel_running_job_then_next_job_runs(runner):
    handle = runner.submit("test-count", {"steps": 500, "delay": 0.02})
    while not any(isinstance(e, JobProgress) for e in handle.events):
        time.sleep(0.01)
    handle.cancel()
    assert isinstance(handle.wait(30), JobCancelled)
    again = runner.submit("test-count", {"steps": 2}).wait(30)
    assert isinstance(again, JobFinished)  # the cancel flag was reset for the next job


def test_cancel_queued_job_never_starts(runner):
    first = runner.submit("test-count", {"steps": 100, "delay": 0.02})
    queued = runner.submit("test-count", {"steps": 2})
    queued.cancel()
    assert isinstance(queued.wait(1), JobCancelled)
    first.cancel()
    first.wait(30)
    assert not any(isinstance(e, JobStarted) for e in queued.events)


def test_job_exception_fails_job_but_worker_survives(runner):
    failed = runner.submit("test-fail", {"readable": False}).wait(60)
    assert isinstance(failed, JobFailed)
    assert "ValueError" in failed.reason
    assert isinstance(runner.submit("test-warm").wait(60), JobFinished)
    assert runner.worker_starts == 1


@pytest.mark.parametrize("how", ["kill", "exit"])
def test_worker_death_fails_job_with_reason_and_next_job_gets_new_worker(runner, how):
    pid_before = runner.submit("test-warm").wait(60).result["pid"]
    dead = runner.submit("test-die", {"how": how}).wait(60)
    assert isinstance(dead, JobFailed)
    if how == "kill":
        assert "signal SIGKILL" in dead.reason and "ran out of memory" in dead.reason
    else:
        assert "exit code 3" in dead.reason
    after = runner.submit("test-warm").wait(60)
    assert isinstance(after, JobFinished)
    assert after.result["pid"] != pid_before
    assert after.result["runs"] == 1  # a fresh worker: cold cache
    assert os.getpid() != pid_before  # and we, the caller, are untouched


def test_worker_killed_from_outside_fails_running_job(runner):
    import signal

    handle = runner.submit("test-count", {"steps": 1000, "delay": 0.02})
    while not any(isinstance(e, JobProgress) for e in handle.events):
        time.sleep(0.01)
    os.kill(runner.worker_pid, signal.SIGKILL)
    end = handle.wait(30)
    assert isinstance(end, JobFailed) and "SIGKILL" in end.reason


def test_out_of_memory_in_worker_is_a_failed_job(runner):
    end = runner.submit("test-oom").wait(60)
    assert isinstance(end, JobFailed) and end.reason.startswith("Out of memory.")
    assert runner.worker_starts == 1


def test_stubborn_job_is_stopped_after_cancel_grace():
    with JobRunner(cancel_grace=0.5) as runner:
        handle = runner.submit("test-stubborn", {"seconds": 60})
        while not any(isinstance(e, JobProgress) for e in handle.events):
            time.sleep(0.01)
        t0 = time.monotonic()
        handle.cancel()
        assert isinstance(handle.wait(30), JobCancelled)
        assert time.monotonic() - t0 < 10
        assert isinstance(runner.submit("test-count", {"steps": 1}).wait(60), JobFinished)


def test_shutdown_cancels_pending_and_running_jobs():
    runner = JobRunner()
    running = runner.submit("test-count", {"steps": 1000, "delay": 0.02})
    pending = runner.submit("test-count", {"steps": 1})
    while not any(isinstance(e, JobProgress) for e in running.events):
        time.sleep(0.01)
    runner.shutdown()
    assert isinstance(pending.outcome, JobCancelled)
    assert isinstance(running.outcome, JobCancelled)
    assert runner.worker_pid is None
    with pytest.raises(MyCanvasError, match="shut down"):
        runner.submit("test-count")


def test_cancel_mid_job_leaves_project_consistent(runner, tmp_path):
    from engine.atomic import TEMP_MARK
    from engine.project import Project

    folder = tmp_path / "proj"
    Project.create(folder, "p").close()
    handle = runner.submit("test-project-items", {"project": str(folder), "steps": 200})
    while sum(isinstance(e, JobProgress) for e in handle.events) < 5:
        time.sleep(0.01)
    handle.cancel()
    assert isinstance(handle.wait(30), JobCancelled)
    with Project.open(folder) as project:
        layouts = project.layouts()
        assert 5 <= len(layouts) < 200
        for layout in layouts:  # every catalogued file is complete
            index = int(layout.scene.split()[1])
            assert project.abspath(layout.caption).read_bytes() == f"item {index}".encode() * 1000
    assert not list(folder.rglob(f"*{TEMP_MARK}*"))
