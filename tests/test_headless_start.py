"""`mycanvas` without a command on a machine with no display: one line saying so and how to
use the command line, instead of Qt's abort."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from desktop_app.launcher import EXIT_NO_DISPLAY, missing_display

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11/Wayland are Linux's")
@pytest.mark.parametrize("args", [[], ["gui"]])
def test_no_display_prints_one_line_and_exits(tmp_path, args):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    proc = subprocess.run([sys.executable, "-m", "desktop_app.launcher", *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert proc.returncode == EXIT_NO_DISPLAY
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "no display" in lines[0] and "mycanvas --help" in lines[0]
    assert "qt.qpa" not in proc.stderr and "Aborted" not in proc.stderr


def test_when_a_display_is_missing():
    assert missing_display({}, "linux")
    assert missing_display({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert not missing_display({"DISPLAY": ":0"}, "linux")
    assert not missing_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not missing_display({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not missing_display({"QT_QPA_PLATFORM": "minimal:enable_fonts"}, "linux")
    assert not missing_display({}, "darwin") and not missing_display({}, "win32")


def test_commands_still_run_without_a_display(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    proc = subprocess.run([sys.executable, "-m", "desktop_app.launcher", "--version"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("mycanvas ")
