"""A run has one owner (issue 23): the worker dies with the window that started it, and while
a process works on a run, no second trainer (a Resume, another command line, a job) starts on
it: each is refused with one line naming that process. Real processes, SIGKILL, the tiny
profile."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from train_project import make_train_project

REPO = Path(__file__).resolve().parent.parent
# Long enough never to finish during a test; a checkpoint every few steps.
LONG = {"steps": 3000, "learning_rate": 1e-3, "checkpoint_every": 3, "sample_every": 0,
        "batch_size": 2}


@pytest.fixture
def project_dir(tmp_path) -> Path:
    return make_train_project(tmp_path / "project")


def _mycanvas(*args: str) -> list[str]:
    return [sys.executable, "-m", "desktop_app.launcher", "-q", *args]


def _wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"no line from process {proc.pid} in {timeout} s")
    return proc.stdout.readline()


def _owner(project_dir: Path, run_id: int) -> str | None:
    from engine.project import Project
    from engine.train import run_owner

    with Project.open(project_dir) as project:
        return run_owner(project, run_id)


def _train_steps(project_dir: Path, run_id: int) -> list[int]:
    steps = []
    for line in (project_dir / "runs" / str(run_id) / "metrics.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the last line, torn by a kill
        if "loss" in record:
            steps.append(record["step"])
    return steps


def _start_cli_trainer(project_dir: Path, *args: str) -> subprocess.Popen:
    """A `mycanvas train` that works until killed; returns once it holds run 1."""
    proc = subprocess.Popen(_mycanvas("train", str(project_dir), "--profile", "tiny",
                                      "--device", "cpu", *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    _wait_for(lambda: proc.poll() is not None or
              f"process {proc.pid} (mycanvas train)" in (_owner(project_dir, 1) or ""),
              180, "the trainer to claim run 1")
    assert proc.poll() is None, proc.communicate()
    return proc


def _second_trainer_refused(project_dir: Path, holder: int) -> None:
    """A second trainer on run 1, from the command line and as a job, is refused naming the
    holder, and writes nothing."""
    from engine.jobs import JobFailed, run_inline

    refusal = f"Run 1 already has an owner: process {holder} (mycanvas train), working on " \
              "training run 1 since "
    cli = subprocess.run(_mycanvas("train", str(project_dir), "--resume", "1", "--steps", "40",
                                   "--profile", "tiny", "--device", "cpu"),
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert cli.returncode == 1 and refusal in cli.stderr, cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1
    job = run_inline("train", {"project": str(project_dir), "profile": "tiny", "device": "cpu",
                               "run_id": 1, "config": {"steps": 40}})
    assert isinstance(job, JobFailed) and job.reason.startswith(refusal), job


def test_a_killed_window_takes_its_worker_along_and_resume_refuses_a_live_owner(
        tiny_models, project_dir):
    from engine.project import Project

    params = {"project": str(project_dir), "profile": "tiny", "device": "cpu", "config": LONG}
    window = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "window_stand_in.py"), "train",
         json.dumps(params), "7"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=REPO)
    try:
        line = _read_line(window, 240)
        assert line.startswith("worker "), (line, window.stderr.read() if window.poll() else "")
        worker = int(line.split()[1])
        assert not _gone(worker)
    finally:
        window.kill()  # SIGKILL: no handler, no clean-up of its own
        window.wait(60)
        killed_at = time.monotonic()
        for pipe in (window.stdout, window.stderr):
            if pipe is not None:
                pipe.close()  # not read to its end: a worker that lives on holds it open
    while not _gone(worker) and time.monotonic() - killed_at < 5.0:
        time.sleep(0.02)
    gone_after = time.monotonic() - killed_at
    if not _gone(worker):
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its window by more than 5 s")
    print(f"worker gone {gone_after:.2f} s after the window was killed")

    with Project.open(project_dir) as project:
        assert project.run(1).status == "running"  # nobody could record the kill
        [entry] = project.interrupted_jobs()  # offered: its window is gone
    assert entry.name == "train" and entry.resume_params["run_id"] == 1
    # A killed process's last threads may still be exiting (its leader already a zombie) on
    # a loaded machine; its lock goes with the last of them.
    _wait_for(lambda: _owner(project_dir, 1) is None, 5.0, "the killed worker's run lock")
    steps_then = _train_steps(project_dir, 1)
    time.sleep(1.0)
    assert _train_steps(project_dir, 1) == steps_then  # nobody trains it any more

    holder = _start_cli_trainer(project_dir, "--resume", "1")  # the user resumed it here
    try:
        _second_trainer_refused(project_dir, holder.pid)
    finally:
        holder.kill()
        holder.communicate(timeout=60)
    steps = _train_steps(project_dir, 1)
    assert steps == sorted(set(steps)), "two trainers wrote the metrics"


def test_the_watchdog_alone_ends_a_worker_whose_parent_died(tmp_path):
    """Without the kernel's parent-death signal (other systems; a worker started from a
    short-lived thread), the watchdog on the parent's sentinel ends the worker."""
    script = (
        "import multiprocessing as mp, sys, time\n"
        "from engine.jobs.parent_watch import die_with_parent\n"
        "def child(parent):\n"
        "    die_with_parent(parent, death_signal=False)\n"
        "    time.sleep(600)\n"
        "if __name__ == '__main__':\n"
        "    import os\n"
        "    p = mp.get_context('spawn').Process(target=child, args=(os.getpid(),))\n"
        "    p.start()\n"
        "    print(f'worker {p.pid}', flush=True)\n"
        "    time.sleep(600)\n")
    path = tmp_path / "parent.py"
    path.write_text(script)
    parent = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    try:
        worker = int(_read_line(parent, 60).split()[1])
        time.sleep(0.5)
        assert not _gone(worker)
    finally:
        parent.kill()
        parent.wait(60)
        assert parent.stdout is not None
        parent.stdout.close()
    killed_at = time.monotonic()
    while not _gone(worker) and time.monotonic() - killed_at < 5.0:
        time.sleep(0.02)
    if not _gone(worker):
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the watchdog did not end the worker within 5 s")
    print(f"watchdog: worker gone {time.monotonic() - killed_at:.2f} s after its parent")


@pytest.mark.slow  # real processes killed and restarted: tens of seconds
def test_two_trainers_on_one_run_cannot_both_write(tiny_models, project_dir):
    """While one process trains run 1, a second trainer on it (a resume from the command line
    or a job) stops before it touches anything: metrics and checkpoints have one writer."""
    holder = _start_cli_trainer(project_dir, "--steps", "3000", "--checkpoint-every", "3",
                                "--sample-every", "0", "--lr", "1e-3")
    run_dir = project_dir / "runs" / "1"
    try:
        _wait_for(lambda: (run_dir / "checkpoints" / "step-0000003").is_dir(), 240,
                  "the first checkpoint")
        _second_trainer_refused(project_dir, holder.pid)
        then = max(_train_steps(project_dir, 1))
        _wait_for(lambda: holder.poll() is not None or
                  max(_train_steps(project_dir, 1)) >= then + 6, 240,
                  "more steps from the one owner")
        assert holder.poll() is None, holder.communicate()
    finally:
        holder.kill()
        holder.communicate(timeout=60)
    steps = _train_steps(project_dir, 1)
    assert steps == list(range(1, len(steps) + 1)), "a second trainer wrote the metrics"
    from engine.project import Project

    with Project.open(project_dir) as project:
        assert [r.id for r in project.runs()] == [1]
        assert project.run(1).status == "running"  # the holder was killed, not refused
