"""The `mycanvas` command: fast help, one-line failures, doctor, new, info."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def mycanvas(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "desktop_app.launcher", *args],
        capture_output=True, text=True, cwd=REPO, env=os.environ.copy(), timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def test_help_lists_commands_and_imports_neither_torch_nor_qt():
    code = (
        "import sys\n"
        "from desktop_app.launcher import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "mods = ('torch', 'diffusers', 'transformers', 'PySide6')\n"
        "heavy = [m for m in mods if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         timeout=120).stdout
    assert "doctor" in out and "new" in out and "info" in out
    assert "HEAVY []" in out


def test_import_engine_does_not_import_torch_or_qt():
    code = ("import sys, engine, engine.cli, engine.jobs, engine.jobs.worker, engine.project, "
            "engine.models.profiles, engine.settings\n"
            "print([m for m in ('torch', 'PySide6', 'diffusers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


def test_engine_never_imports_desktop_app_or_qt_statically():
    # The same rule import-linter enforces in CI, checked here without it too.
    offenders = []
    for path in (REPO / "engine").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            s = line.strip()
            if s.startswith(("import ", "from ")) and ("PySide6" in s or "desktop_app" in s):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {s}")
    assert not offenders


def test_doctor_reports_device_versions_and_roles():
    report = json.loads(mycanvas("doctor", "--json").stdout)
    assert report["device"] == "cpu" and report["dtype"] == "float32"
    assert report["versions"]["torch"] != "missing"
    assert set(report["profiles"]) >= {"tiny", "sd15"}
    sd15 = report["profiles"]["sd15"]
    assert sd15["inpaint"]["present"] is False
    assert "mycanvas models download sd15" in sd15["inpaint"]["note"]
    assert set(sd15) == {"base", "inpaint", "segmenter", "clip", "detector", "planner"}
    text = mycanvas("doctor").stdout
    assert "profile sd15 (default)" in text and "missing" in text


def test_new_then_info(tmp_path):
    folder = tmp_path / "My Pets"
    assert "Created project 'My Pets'" in mycanvas("new", str(folder)).stdout
    info = json.loads(mycanvas("info", str(folder), "--json").stdout)
    assert info["name"] == "My Pets"
    proc = mycanvas("new", str(folder), check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("mycanvas new: ")


def test_failure_is_one_line_and_debug_adds_traceback(tmp_path):
    proc = mycanvas("info", str(tmp_path), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0
    assert "not a MyCanvas project" in proc.stderr and "Traceback" not in proc.stderr
    proc = mycanvas("--debug", "info", str(tmp_path), check=False)
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_usage_errors_exit_2():
    assert mycanvas("frobnicate", check=False).returncode == 2
    assert mycanvas("doctor", "--device", check=False).returncode == 2


def test_bad_device_is_one_line():
    proc = mycanvas("doctor", "--device", "tpu", check=False)
    assert proc.returncode == 1 and "--device must be one of" in proc.stderr


@pytest.mark.parametrize("args", [["models", "list"]])
def test_models_list(args):
    out = mycanvas(*args).stdout
    assert "tiny" in out and "[test models]" in out and "sd15" in out


def test_mycanvas_without_arguments_opens_the_window(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen([sys.executable, "-m", "desktop_app.launcher"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=4)  # still running: the event loop is up, nothing crashed
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    assert "Traceback" not in err, err


def test_resume_takes_last_or_a_run_id_and_refuses_anything_else(tmp_path):
    from engine.cli.arguments import resumed_run_id
    from engine.errors import InputError
    from engine.project import Project

    Project.create(tmp_path / "p", "p").close()
    asked = []

    def latest(project):
        asked.append(project.root)
        return 7

    assert resumed_run_id(None, str(tmp_path / "p"), latest) is None
    assert resumed_run_id("3", str(tmp_path / "p"), latest) == 3
    assert asked == []
    assert resumed_run_id("last", str(tmp_path / "p"), latest) == 7 and len(asked) == 1
    with pytest.raises(InputError, match="--resume takes a run id, got 'soon'"):
        resumed_run_id("soon", str(tmp_path / "p"), latest)
