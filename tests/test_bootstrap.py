"""scripts/bootstrap.sh, which the README's two commands share: a venv with the test extras
serves the app as it is, run-tests after run-app installs the test extras once, and nothing
is installed twice. Run against a stand-in venv whose python only records what it is asked."""

from __future__ import annotations

import os
import platform
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

FAKE_PYTHON = """#!/usr/bin/env bash
# Records pip installs; every import check passes.
if [ "$1" = "-m" ] && [ "$2" = "pip" ] && [ "$3" = "install" ]; then
  case "$*" in *" -e "*) echo "${@: -1}" >> "$(dirname "$0")/../pip-installs.log";; esac
fi
exit 0
"""
FAKE_DPKG = """#!/usr/bin/env bash
printf 'install ok installed'
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def sandbox(tmp_path):
    """A copy of the two files the stamp hashes, a stand-in venv and a dpkg that has it all."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "bootstrap.sh", repo / "scripts" / "bootstrap.sh")
    shutil.copy(REPO / "pyproject.toml", repo / "pyproject.toml")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    _executable(venv / "bin" / "python", FAKE_PYTHON)
    tools = tmp_path / "tools"
    tools.mkdir()
    _executable(tools / "dpkg-query", FAKE_DPKG)
    return repo, venv, tools


def _run(sandbox, with_tests: bool) -> list[str]:
    """Source bootstrap.sh as scripts/run-app (or run-tests) does; the pip installs it ran."""
    repo, venv, tools = sandbox
    log = venv / "pip-installs.log"
    before = log.read_text().splitlines() if log.exists() else []
    env = {**os.environ, "MYCANVAS_VENV": str(venv), "PATH": f"{tools}:{os.environ['PATH']}",
           "MYCANVAS_WITH_TESTS": "1" if with_tests else "0"}
    proc = subprocess.run(["bash", "-c", 'source "$0"', str(repo / "scripts" / "bootstrap.sh")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    after = log.read_text().splitlines() if log.exists() else []
    return [line.removeprefix(str(repo)) or "(app)" for line in after[len(before):]]


# The app's own extras: OpenVINO on x86 (the dataset's inpainting), none elsewhere.
APP = "[openvino]" if platform.machine().lower() in ("x86_64", "amd64") else "(app)"


def test_the_two_commands_never_reinstall_each_others_packages(sandbox):
    assert _run(sandbox, with_tests=False) == [APP]  # first run-app
    assert _run(sandbox, with_tests=True) == ["[test]"]  # run-tests adds the test extras once
    assert _run(sandbox, with_tests=False) == []  # run-app: the test venv serves the app
    assert _run(sandbox, with_tests=True) == []
    assert _run(sandbox, with_tests=False) == []


def test_a_changed_pyproject_reinstalls_once_keeping_the_test_extras(sandbox):
    repo, _venv, _tools = sandbox
    assert _run(sandbox, with_tests=True) == ["[test]"]
    with open(repo / "pyproject.toml", "a") as f:
        f.write("\n# a new pin\n")
    assert _run(sandbox, with_tests=False) == ["[test]"]  # the venv stays a test venv
    assert _run(sandbox, with_tests=True) == []
    assert _run(sandbox, with_tests=False) == []
