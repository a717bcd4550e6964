"""A trash operation killed at any point leaves files and rows consistent.

A child process runs trash / restore / empty on a project and is killed (SIGKILL) at one of
the points between its steps (engine/project/trash.py `_reached`): after the files are
linked, after the catalogue commit. Then:

* every row names a file that exists, and a trashed row's file is in trash/, a live row's
  is not;
* each picture is either where it was or where the operation puts it (never half);
* what the kill left over (a file no row names) is gone after the next trash operation;
* running the operation again finishes it, with the same end state as an unkilled run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.project import Generation, Project
from engine.project.trash import TRASH_DIR, original_rel

from scoring_project import png  # isort: skip

REPO = Path(__file__).resolve().parent.parent
CHILD = """
import os, signal, sys
import engine.project.trash as trash
from engine.project import Project

point, operation, folder = sys.argv[1:4]
ids = [int(i) for i in sys.argv[4].split(",")]

def reached(where):
    if where == point:
        os.kill(os.getpid(), signal.SIGKILL)

trash._reached = reached
project = Project.open(folder)
getattr(project, operation)(ids)
"""


def _make(folder: Path) -> list[int]:
    """Three pictures; the first two share one image file (the same bytes)."""
    with Project.create(folder, "Trash") as p:
        ids = []
        for n, seed in enumerate((1, 1, 2)):
            pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), np.uint8)
            rel = p.put_bytes(png(Image.fromarray(pixels)), "png")
            ids.append(p.add_generation(Generation(prompt=f"picture {n}", image_file=rel)).id)
    return ids


def _state(folder: Path) -> dict[int, tuple[bool, str]]:
    with Project.open(folder) as p:
        return {g.id: (g.trashed, str(g.image_file)) for g in p.generations()}


def _check_consistent(folder: Path) -> None:
    with Project.open(folder) as p:
        for g in p.generations():
            assert g.image_file and p.abspath(g.image_file).is_file(), g
            assert g.image_file.startswith(f"{TRASH_DIR}/") == g.trashed, g


def _leftovers(folder: Path) -> list[str]:
    """Files in trash/ no row names, and originals of trashed pictures no row names."""
    with Project.open(folder) as p:
        named = {g.image_file for g in p.generations()}
        trashed = [g.image_file for g in p.generations() if g.trashed]
    out = [path.relative_to(folder).as_posix() for path in (folder / TRASH_DIR).rglob("*")
           if path.is_file() and path.relative_to(folder).as_posix() not in named] \
        if (folder / TRASH_DIR).is_dir() else []
    out += [original_rel(rel) for rel in trashed if (folder / original_rel(rel)).is_file()
            and original_rel(rel) not in named]
    return out


def _kill_at(folder: Path, point: str, operation: str, ids: list[int]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, point, operation, str(folder), ",".join(map(str, ids))],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr


SETUPS = {  # operation -> what is done before it (unkilled)
    "trash_generations": None,
    "restore_generations": "trash_generations",
    "empty_trash": "trash_generations",
}


@pytest.mark.parametrize("operation, point", [
    ("trash_generations", "trash:linked"),
    ("trash_generations", "trash:committed"),
    ("restore_generations", "restore:linked"),
    ("restore_generations", "restore:committed"),
    ("empty_trash", "empty:committed"),
])
def test_a_killed_trash_operation_leaves_files_and_rows_consistent(tmp_path, operation, point):
    # The same operation, not killed, gives the end state to compare with.
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for folder in (clean, killed):
        ids = _make(folder)
        chosen = ids[:1] + ids[2:]  # one of the two sharing a file, and the third
        if SETUPS[operation]:
            with Project.open(folder) as p:
                getattr(p, SETUPS[operation])(chosen)
    before = _state(killed)
    with Project.open(clean) as p:
        getattr(p, operation)(chosen)
    after = _state(clean)

    _kill_at(killed, point, operation, chosen)

    _check_consistent(killed)
    now = _state(killed)
    committed = point.endswith("committed")
    assert now == (after if committed else before)
    # The next trash operation (any) tidies what the kill left, and redoing it finishes it.
    with Project.open(killed) as p:
        p.tidy_trash()
    assert _leftovers(killed) == []
    with Project.open(killed) as p:
        if operation == "empty_trash" and committed:
            p.empty_trash()  # its pictures are gone already: nothing left to name
        else:
            getattr(p, operation)(chosen)
    _check_consistent(killed)
    assert _state(killed) == after
    assert _leftovers(killed) == [] and _leftovers(clean) == []
    files = {p.relative_to(killed).as_posix() for p in killed.rglob("*")
             if p.is_file() and ("files" in p.parts or TRASH_DIR in p.parts)}
    clean_files = {p.relative_to(clean).as_posix() for p in clean.rglob("*")
                   if p.is_file() and ("files" in p.parts or TRASH_DIR in p.parts)}
    assert files == clean_files


def test_the_kill_points_are_where_the_module_says(tmp_path):
    """Each named point is reached, in order, by an operation that runs to the end."""
    import engine.project.trash as trash

    seen: list[str] = []
    ids = _make(tmp_path / "p")
    real = trash._reached
    trash._reached = seen.append
    try:
        with Project.open(tmp_path / "p") as p:
            p.trash_generations(ids)
            p.restore_generations(ids[:1])
            p.empty_trash()
    finally:
        trash._reached = real
    assert seen == ["trash:linked", "trash:committed", "trash:done", "restore:linked",
                    "restore:committed", "restore:done", "empty:committed", "empty:done"]
