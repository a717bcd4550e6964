"""Upgrades: a project written by an earlier version opens in this one. Each version that
changes the catalogue's schema stores a project it wrote under tests/data/projects/
(tests/data/make_project_fixture.py); every later version opens all of them. Opening runs on
a copy (the fixture stays as it was written), migrations first back the catalogue up; a
project newer than the app is refused with a clear message and left byte for byte."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from engine.errors import ProjectError
from engine.project import CURRENT_VERSION, Project

FIXTURES = Path(__file__).parent / "data" / "projects"
WRITTEN = sorted(p for p in FIXTURES.iterdir() if p.is_dir()) if FIXTURES.is_dir() else []


def _contents(folder: Path) -> dict[str, str]:
    """Every file under folder with its hash, and every folder (empty hash)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "" for p in sorted(folder.rglob("*"))}


def test_there_is_a_fixture_of_the_schema_this_change_was_made_at():
    # Every schema this app writes has its fixture: a change of schema adds one.
    names = {p.name for p in WRITTEN}
    assert {"schema-5", f"schema-{CURRENT_VERSION}"} <= names, names
    for folder in WRITTEN:
        about = json.loads((FIXTURES / f"{folder.name}.json").read_text())
        assert folder.name == f"schema-{about['schema']}" and about["schema"] <= CURRENT_VERSION


@pytest.mark.parametrize("fixture", WRITTEN, ids=[p.name for p in WRITTEN])
def test_a_project_an_earlier_version_wrote_opens_with_everything_in_it(fixture, tmp_path):
    pristine = _contents(fixture)
    copy = tmp_path / "project"
    shutil.copytree(fixture, copy)
    written_at = json.loads((FIXTURES / f"{fixture.name}.json").read_text())["schema"]
    with Project.open(copy) as project:
        assert project.schema_version == CURRENT_VERSION
        concepts = {c.name: c for c in project.concepts()}
        assert set(concepts) == {"Mochi", "Cup"}
        photos = project.photos()
        assert len(photos) == 2 and all(project.abspath(p.file).is_file() for p in photos)
        assert project.masks() and project.layouts() and project.dataset_items()
        run, = project.runs()
        assert run.status == "finished"
        gallery = project.gallery(run_id=run.id)
        assert gallery and all(g.scored for g in gallery)
        for picture in gallery:  # content-addressed files are what their names say
            assert picture.path is not None
            assert hashlib.sha256(picture.path.read_bytes()).hexdigest() == picture.path.stem
    if written_at < CURRENT_VERSION:  # migrated, after a backup of the catalogue as it was
        assert (copy / f"catalogue.v{written_at}.bak").is_file()
    assert _contents(fixture) == pristine


def test_the_command_line_reads_the_fixture(tmp_path, capsys):
    from engine.cli import main as cli_main

    copy = tmp_path / "project"
    shutil.copytree(WRITTEN[-1], copy)
    assert cli_main(["info", str(copy), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert sorted(c["name"] for c in info["concepts"]) == ["Cup", "Mochi"]


def test_a_project_newer_than_the_app_is_refused_and_left_untouched(tmp_path):
    copy = tmp_path / "project"
    shutil.copytree(WRITTEN[-1], copy)
    conn = sqlite3.connect(copy / "catalogue.sqlite")
    conn.execute(f"PRAGMA user_version = {CURRENT_VERSION + 1}")
    conn.close()
    before = _contents(copy)
    with pytest.raises(ProjectError) as refused:
        Project.open(copy)
    message = str(refused.value)
    assert "made by a newer version of MyCanvas Studio" in message
    assert f"schema {CURRENT_VERSION + 1}" in message and "Update MyCanvas Studio" in message
    assert "\n" not in message
    assert _contents(copy) == before  # byte for byte, and no side file appeared
