"""Several processes share one project: nothing they commit may be lost.

The data-loss bug: a process that holds a live SQLite connection and opens + closes the
catalogue file any other way drops its own POSIX locks; another process then believes it is
the last connection, checkpoints and deletes the WAL the first one still writes into.
"""

from __future__ import annotations

import ast
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.project import Project
from engine.project.catalogue import open_catalogues

WRITER = ("import sys; from engine.project import Project; q = Project.open(sys.argv[1]); "
          "q.set_meta('k' + sys.argv[2], 'v'); q.close()")


def write_from_other_process(project: Path, n: int) -> None:
    subprocess.run([sys.executable, "-c", WRITER, str(project), str(n)], check=True,
                   timeout=60)


def meta_keys(project: Path) -> set[str]:
    conn = sqlite3.connect(project / "catalogue.sqlite")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {r[0] for r in conn.execute("SELECT key FROM meta")}
    finally:
        conn.close()


def deleted_descriptors() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "catalogue" in target and target.endswith("(deleted)"):
            out.append(target)
    return out


@pytest.fixture
def project(tmp_path: Path) -> Path:
    Project.create(tmp_path / "proj", "shared").close()
    return tmp_path / "proj"


def test_reopening_in_the_same_process_loses_no_write_of_another_process(project):
    """The issue's reproduction, kept as it was filed."""
    a = Project.open(project)
    write_from_other_process(project, 1)
    b = Project.open(project)  # the same project again, in the same process
    a.close()
    write_from_other_process(project, 2)  # used to delete the live WAL on its close
    b.set_meta("g2", "v")
    write_from_other_process(project, 3)  # used to be lost
    assert not deleted_descriptors()
    b.close()
    assert {"k1", "k2", "k3", "g2"} <= meta_keys(project)


def test_open_returns_the_live_instance_until_its_last_close(project):
    a = Project.open(project)
    b = Project.open(str(project) + "/")  # another spelling of the same folder
    assert b is a and open_catalogues() == [a.catalogue_path]
    a.close()
    assert not b.closed and b.meta("name") == "shared"
    b.close()
    assert b.closed and open_catalogues() == []
    c = Project.open(project)  # a fresh instance after the last close
    assert c is not a
    c.close()


def test_two_projects_are_two_instances(tmp_path, project):
    Project.create(tmp_path / "other", "other").close()
    with Project.open(project) as a, Project.open(tmp_path / "other") as b:
        assert a is not b and a.name == "shared" and b.name == "other"


def test_the_guard_catches_a_plain_open_of_a_live_catalogue(project,
                                                            no_plain_open_of_live_catalogue):
    """The runtime check every test runs under: reading the header the old way is refused."""
    with (Project.open(project) as proj,
          pytest.raises(AssertionError, match="outside SQLite"),
          open(proj.catalogue_path, "rb") as f):  # the bug's shape
        f.read(100)
    no_plain_open_of_live_catalogue.clear()  # this test broke the rule on purpose
    with open(project / "catalogue.sqlite", "rb") as f:  # no connection: allowed
        assert f.read(16) == b"SQLite format 3\x00"


def test_migration_backup_and_checks_never_open_the_file_outside_sqlite(project):
    """Project.open's checks (header, size, quick_check) and the migration's backup run
    through SQLite only: the guard would fail this test otherwise."""
    from engine.project import schema

    conn = sqlite3.connect(project / "catalogue.sqlite")
    # The catalogue as schema 3 left it: every table rebuilt by migrations 1..3 only.
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                 ).fetchall():
        conn.execute(f"DROP TABLE {table}")
    schema.apply_migrations(conn, 0, 3)
    conn.execute("INSERT INTO meta (key, value) VALUES ('name', 'shared')")
    conn.commit()
    conn.close()
    with Project.open(project) as outer:
        write_from_other_process(project, 1)
        with Project.open(project) as inner:
            assert inner is outer
    assert (project / "catalogue.v3.bak").is_file()
    assert "k1" in meta_keys(project)


def test_worker_job_and_reopen_keep_every_write(project):
    """A worker process writes through the job runner while this process reopens the
    project and writes too."""
    from engine.jobs import JobFinished, register_job
    from engine.jobs.worker import JobRunner

    register_job("meta-writer", "tests.jobs_for_tests:meta_writer_job")
    mine = Project.open(project)
    with JobRunner() as runner:
        handle = runner.submit("meta-writer", {"project": str(project), "seconds": 4.0})
        n = 0
        while not handle.done:
            again = Project.open(project)
            again.set_meta(f"g{n}", "v")
            again.close()
            n += 1
        end = handle.wait(60)
    assert isinstance(end, JobFinished), end
    assert not deleted_descriptors()
    mine.close()
    keys = meta_keys(project)
    assert {f"w{i}" for i in range(end.result)} <= keys
    assert {f"g{i}" for i in range(n)} <= keys


# --------------------------------------------------------------------------- static guard

# Functions that open a catalogue's file on purpose: the repair reads a damaged one after
# checking that this process holds no connection to it; the backup fsyncs its own new copy.
ALLOWED = {("engine/project/repair.py", "repair_project"),
           ("engine/project/connection.py", "backup_catalogue")}
# Modules that hold connections open no file at all but through SQLite, whatever its name.
NO_PLAIN_OPEN = {"engine/project/connection.py", "engine/project/catalogue.py"}
OPENERS = {"open", "read_bytes", "read_text", "write_bytes", "write_text", "atomic_copy",
           "copy", "copyfile", "copy2", "fsync_file"}


def _mentions_catalogue(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        text = (sub.id if isinstance(sub, ast.Name) else sub.attr
                if isinstance(sub, ast.Attribute) else sub.value
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str) else "")
        if "catalogue" in text.lower() or "CATALOGUE_NAME" in text:
            return True
    return False


def test_no_engine_code_opens_a_catalogue_path_outside_sqlite(repo_root):
    found = []
    for path in sorted((repo_root / "engine").rglob("*.py")):
        rel = path.relative_to(repo_root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for call in ast.walk(func):
                if not isinstance(call, ast.Call):
                    continue
                name = (call.func.id if isinstance(call.func, ast.Name) else call.func.attr
                        if isinstance(call.func, ast.Attribute) else "")
                if name not in OPENERS:
                    continue
                if isinstance(call.func, ast.Attribute) and \
                        getattr(call.func.value, "id", "") in ("cls", "Project"):
                    continue  # Project.open: through SQLite
                subject = [*call.args, *(k.value for k in call.keywords)]
                if isinstance(call.func, ast.Attribute):
                    subject.append(call.func.value)
                suspicious = rel in NO_PLAIN_OPEN or any(_mentions_catalogue(s)
                                                         for s in subject)
                if suspicious and (rel, func.name) not in ALLOWED:
                    found.append(f"{rel}:{call.lineno} {name}() in {func.name}")
    assert not found, "catalogue files opened outside SQLite: " + "; ".join(found)


def test_the_static_guard_sees_the_old_header_read():
    """The old inspect_catalogue read the header with open(path, "rb") in connection.py."""
    assert "engine/project/connection.py" in NO_PLAIN_OPEN
    bad = ast.parse("def inspect(path):\n    with open(catalogue_path, 'rb') as f:\n"
                    "        return f.read(100)\n")
    call = next(n for n in ast.walk(bad) if isinstance(n, ast.Call) and
                getattr(n.func, "id", "") == "open")
    assert _mentions_catalogue(call.args[0])
