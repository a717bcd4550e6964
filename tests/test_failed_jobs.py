"""A job that fails leaves the project as it was, and a job cut short does not stay "running"
(issue 23): what a failed extraction added is taken back (Project.provisional), a run whose
process is gone is marked interrupted when the next one starts, and a journal row cut short
is settled once a rerun completed it. Real processes and SIGKILL, the tiny profile."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _mycanvas(*args: str) -> list[str]:
    return [sys.executable, "-m", "desktop_app.launcher", "-q", *args]


@pytest.fixture(scope="module")
def cat_photo(tmp_path_factory) -> Path:
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("photo") / "cat.png"
    Image.fromarray(data.chelsea()).save(path)
    return path


@pytest.fixture
def project_dir(tmp_path) -> Path:
    from engine.project import Project

    Project.create(tmp_path / "project", "Failed jobs").close()
    return tmp_path / "project"


def _counts(project_dir: Path) -> dict[str, int]:
    from engine.project import Project

    with Project.open(project_dir) as project:
        counts = project.summary()
    counts.pop("job_journal")  # the failure is on record there, as it should be
    return counts


def _files(project_dir: Path) -> list[Path]:
    return sorted(p for p in (project_dir / "files").rglob("*") if p.is_file())


def test_a_failed_extraction_leaves_no_concepts_photos_or_run(tiny_models, project_dir,
                                                              cat_photo):
    """Four concepts without boxes on the cat photo: the dog is not found, the command fails
    after it recorded the concepts, their photos and a run; all of that is taken back."""
    before, files = _counts(project_dir), _files(project_dir)
    proc = subprocess.run(_mycanvas("extract", str(project_dir), str(cat_photo), "--concepts",
                                    "a:cat,b:dog,c:teapot,d:cup", "--steps", "8",
                                    "--iterations", "2", "--profile", "tiny", "--device", "cpu"),
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 1 and "Could not find b" in proc.stderr, proc.stderr
    assert _counts(project_dir) == before
    assert _files(project_dir) == files
    assert not (project_dir / "runs" / "1").exists()


@pytest.mark.slow  # real processes killed and restarted: tens of seconds
def test_a_new_extraction_after_a_kill_marks_the_old_run_interrupted(tiny_models,
                                                                     project_dir, cat_photo):
    from engine.jobs import JobFinished, JobLog, run_inline
    from engine.project import Project

    box = ["--box", "mochi", "100", "20", "400", "300"]
    killed = subprocess.Popen(
        _mycanvas("extract", str(project_dir), str(cat_photo), "--concepts", "mochi:cat", *box,
                  "--steps", "3000", "--checkpoint-every", "2", "--profile", "tiny",
                  "--device", "cpu", "--segment-method", "fallback"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    try:
        deadline = time.monotonic() + 240
        first = project_dir / "runs" / "1" / "checkpoints" / "step-0000002"
        while not first.is_dir() and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.is_dir(), killed.communicate()
    finally:
        killed.kill()
        killed.communicate(timeout=60)
    with Project.open(project_dir) as project:
        assert project.run(1).status == "running"  # nobody could record the kill
    logs: list[str] = []
    end = run_inline("extract", {
        "project": str(project_dir), "photo": str(cat_photo), "profile": "tiny",
        "device": "cpu", "segment_method": "fallback",
        "concepts": [{"name": "Tama", "class_word": "cat", "box": [100, 20, 400, 300]}],
        "config": {"steps": 2, "iterations": 1}},
        lambda e: logs.append(e.text) if isinstance(e, JobLog) else None)
    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    with Project.open(project_dir) as project:
        assert [(r.id, r.status) for r in project.runs()] == [(1, "interrupted"),
                                                              (2, "finished")]
    assert any("Run 1 was interrupted" in line and "--resume 1" in line for line in logs)


def test_a_killed_personalize_is_settled_when_a_rerun_completes_it(project_dir, monkeypatch):
    """The command line journals Personalize; killed, its row stays "running" with a dead
    owner (offered for resuming). A later Personalize that finishes completes the chain, so
    that row is settled as resumed. The chain's work is stood in for (a job that waits, one
    that returns): the journal, the declaration and the kill are real."""
    from engine.jobs.registry import target_overrides
    from engine.project import Project

    script = (
        "import argparse, sys\n"
        f"sys.path.insert(0, {str(REPO / 'tests')!r})\n"
        "from engine.jobs import register_job\n"
        "register_job('personalize', 'jobs_for_tests:personalize_waits')\n"
        "from engine.cli.progress import run_job_in_cli\n"
        "from engine.personalize.jobs import PERSONALIZE\n"
        f"run_job_in_cli(PERSONALIZE, PERSONALIZE.params(project={str(project_dir)!r}),\n"
        "               argparse.Namespace(quiet=True))\n")
    killed = subprocess.Popen([sys.executable, "-c", script], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and killed.poll() is None:
            with Project.open(project_dir) as project:
                if project.journal():
                    break
            time.sleep(0.05)
        assert killed.poll() is None, killed.communicate()
    finally:
        killed.kill()
        killed.communicate(timeout=60)
    with Project.open(project_dir) as project:
        [cut_short] = project.interrupted_jobs()
    assert cut_short.name == "personalize" and cut_short.state == "running"

    from engine.cli.progress import run_job_in_cli
    from engine.personalize.jobs import PERSONALIZE

    monkeypatch.setitem(target_overrides, "personalize", "jobs_for_tests:personalize_returns")
    run_job_in_cli(PERSONALIZE, PERSONALIZE.params(project=str(project_dir)),
                   argparse.Namespace(quiet=True))
    with Project.open(project_dir) as project:
        assert project.interrupted_jobs() == []
        states = {e.job_id: e.state for e in project.journal()}
    assert states[cut_short.job_id] == "resumed"
    assert sorted(states.values()) == ["finished", "resumed"]
