"""SIGKILL a job's worker in the middle of a run, then resume the run in a new worker: the
shared half of the kill-and-resume tests of training and extraction."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any


def kill_then_resume(job: str, params: dict[str, Any], project_dir: Path, run_kind: str,
                     *, total: int, kill_from: int, saved: range) -> tuple[Any, Path]:
    """Run `job`, kill its worker at the first progress event of `total` steps at or after
    step `kill_from`, check the run was left "running" with its last checkpoint in `saved`,
    then resume it from that checkpoint. Returns (the resumed job's result, the run's dir)."""
    from engine.jobs import JobFailed, JobFinished, JobProgress
    from engine.jobs.worker import JobRunner
    from engine.project import Project

    with JobRunner() as runner:
        killed: dict[str, int | None] = {"at": None}

        def kill_mid_run(event: Any) -> None:
            if (isinstance(event, JobProgress) and event.total == total
                    and event.step >= kill_from and killed["at"] is None):
                killed["at"] = event.step
                os.kill(runner.worker_pid, signal.SIGKILL)

        runner.add_listener(kill_mid_run)
        first = runner.submit(job, params).wait(300)
        assert isinstance(first, JobFailed) and "SIGKILL" in first.reason
        with Project.open(project_dir) as project:
            run = project.runs(run_kind)[-1]
        assert run.status == "running"  # nobody could record the kill
        run_dir = project_dir / run.output_dir
        last_saved = max(int(p.name.split("-")[1])
                         for p in (run_dir / "checkpoints").glob("step-*"))
        assert last_saved in saved, last_saved
        resumed = runner.submit(job, {**params, "config": {}, "run_id": run.id}).wait(300)
        assert isinstance(resumed, JobFinished), getattr(resumed, "detail", resumed)
        assert resumed.result.resumed_from == last_saved
    return resumed.result, run_dir
