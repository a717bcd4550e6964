"""The window's Resume refuses a second owner (issue 23): while another process trains a run,
clicking Resume on the job that trained it before says who works on it, in one line, and
starts nothing; the job stays offered."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from engine.project import Project
from engine.train import run_owner

from train_project import make_train_project  # isort: skip

REPO = Path(__file__).resolve().parents[2]


def test_resume_refuses_while_another_process_trains_the_run(make_window, qtbot, tmp_path):
    folder = make_train_project(tmp_path / "p")
    holder = subprocess.Popen(
        [sys.executable, "-m", "desktop_app.launcher", "-q", "train", str(folder), "--profile",
         "tiny", "--device", "cpu", "--steps", "3000", "--sample-every", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    try:
        deadline = time.monotonic() + 180
        owner = None
        while time.monotonic() < deadline and holder.poll() is None:
            with Project.open(folder) as project:
                owner = run_owner(project, 1) if project.runs() else None
            if owner:
                break
            time.sleep(0.05)
        assert owner and f"process {holder.pid} (mycanvas train)" in owner, \
            holder.communicate() if holder.poll() is not None else owner
        with Project.open(folder) as project:  # what a window killed while training left
            project.journal_started("cut-short", "train", "Train the concepts",
                                    {"project": str(folder), "profile": "tiny",
                                     "device": "cpu", "config": {"steps": 3000}})
            project.journal_note_resume("cut-short", run_id=1, config={})
            project.journal_ended("cut-short", "interrupted", "The app was closed during it")
        window = make_window(folder)
        bar = window.resume_bar
        assert bar.isVisible() and bar.resume_button.isVisible()
        bar.resume_button.click()
        message = window.statusBar().currentMessage()
        assert message.startswith(f"Could not resume: Run 1 already has an owner: process "
                                  f"{holder.pid} (mycanvas train), working on training run 1 "
                                  "since "), message
        assert "\n" not in message
        assert [h.spec.name for h in window.jobs.runner.jobs()] in ([], ["device-info"])
        with Project.open(folder) as project:
            assert [e.job_id for e in project.interrupted_jobs()] == ["cut-short"]
    finally:
        holder.kill()
        holder.communicate(timeout=60)
