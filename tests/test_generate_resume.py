"""A killed `mycanvas generate -n 5` run again continues its batch (issue 23): the same
seeds, nothing made twice, and every picture of the batch scored. A real SIGKILL of the
command, the tiny profile."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from generate_project import PROMPT, train_run
from train_project import make_train_project

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path, tiny_models):
    folder = make_train_project(tmp_path / "project")
    return folder, train_run(folder, 0)


def _pictures(folder: Path) -> list:
    from engine.project import Project

    with Project.open(folder) as project:
        return project.generations()


@pytest.mark.slow  # real processes killed and restarted: tens of seconds
def test_a_killed_batch_run_again_makes_only_the_rest_and_scores_them_all(project):
    from engine.project import Project

    folder, run_id = project
    cmd = [sys.executable, "-m", "desktop_app.launcher", "-q", "generate", str(folder),
           "--run", str(run_id), "--prompt", PROMPT, "-n", "5", "--seed", "11", "--steps",
           "20", "--profile", "tiny", "--device", "cpu"]
    killed = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    try:
        deadline = time.monotonic() + 240
        while len(_pictures(folder)) < 2 and killed.poll() is None and \
                time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        killed.kill()
        _out, err = killed.communicate(timeout=60)
    made_before = _pictures(folder)
    assert 2 <= len(made_before) < 5, (len(made_before), err)

    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"({len(made_before)} made before)" in again.stdout
    pictures = _pictures(folder)
    assert sorted(g.seed for g in pictures) == [11, 12, 13, 14, 15]  # each seed once
    assert len({g.image_file for g in pictures}) == 5  # no picture stored twice
    assert len({g.settings["batch"] for g in pictures}) == 1
    assert sorted(g.settings["index"] for g in pictures) == [0, 1, 2, 3, 4]
    with Project.open(folder) as proj:
        assert all(proj.gallery_image(g.id).scored for g in pictures)  # the killed ones too
        assert proj.interrupted_jobs() == []  # the cut-short command is settled
        assert [e.state for e in proj.journal()] == ["finished", "resumed"]
