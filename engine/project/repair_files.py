"""The repair's second source: the project's content-addressed files.

After the catalogue's rows are rebuilt, the files they name are checked (present, bytes
that hash to their name). A generated picture whose row was lost still carries its recipe in
a PNG text chunk (engine/generate/recipe.py writes it), so each picture under files/ that no
row names is read back, within the limits of engine.image_files, and listed again as a
generation when its recipe is sound. Its scores cannot come back: `mycanvas score` makes
them again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any, Protocol

from engine.atomic import file_sha256
from engine.errors import InputError
from engine.image_files import RECIPE_FORMAT, recipe_chunk
from engine.project.schema import FILE_COLUMNS

_MAX_PROMPT_CHARS = 2000
_MAX_ID = 2**63 - 1


class FileReport(Protocol):
    files_checked: int
    files_missing: list[str]
    files_corrupt: list[str]
    pictures_relisted: int
    pictures_unreadable: list[str]
    invalid_dropped: dict[str, int]
    orphans_removed: dict[str, int]


def referenced_files(conn: sqlite3.Connection) -> set[str]:
    """Every project-relative file a row of the catalogue names."""
    names: set[str] = set()
    for table, column, kind in FILE_COLUMNS:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone():
            continue
        if column not in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
            continue
        for (value,) in conn.execute(f"SELECT {column} FROM {table}"):
            if not value:
                continue
            if kind == "json-map":
                with contextlib.suppress(ValueError, AttributeError):
                    names.update(str(v) for v in json.loads(value).values())
            else:
                names.add(str(value))
    return names


def _hash_matches(path: Path) -> bool:
    """Whether a content-addressed file's bytes still hash to its name (other files: yes)."""
    stem = path.name.split(".", 1)[0]
    if len(stem) != 64:
        return True
    return file_sha256(path) == stem


def check_files(root: Path, dest: Path, report: FileReport) -> None:
    """Count the files the rebuilt catalogue names that are missing or damaged."""
    conn = sqlite3.connect(dest)
    try:
        names = referenced_files(conn)
    finally:
        conn.close()
    for rel in sorted(names):
        report.files_checked += 1
        path = root / rel
        if not path.is_file():
            report.files_missing.append(rel)
        elif rel.startswith("files/") and not _hash_matches(path):
            report.files_corrupt.append(rel)


# Rows that are nothing without their file (a photo, a mask, a dataset item): (table, column).
_ROWS_NEED_FILES = (("photos", "file"), ("masks", "file"), ("dataset_items", "image_file"))


def drop_rows_without_files(root: Path, dest: Path, report: FileReport) -> None:
    """A photo, mask or dataset item whose file is missing (a garbled path, or the file gone)
    is dropped and counted, with the rows that need it (a photo's masks); a photo whose
    path lost a byte is first pointed back at its file by its sha256."""
    conn = sqlite3.connect(dest, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN")
        for pid, rel, sha in conn.execute("SELECT id, file, sha256 FROM photos").fetchall():
            if (root / str(rel)).is_file() or not isinstance(sha, str) or len(sha) != 64:
                continue
            found = sorted((root / "files" / sha[:2]).glob(f"{sha}.*"))
            if found and _hash_matches(found[0]):
                conn.execute("UPDATE photos SET file = ? WHERE id = ?",
                             (found[0].relative_to(root).as_posix(), pid))
        counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                  for t in ("photos", "masks", "dataset_items")}
        for table, column in _ROWS_NEED_FILES:
            gone = [(rid,) for rid, rel in conn.execute(f"SELECT id, {column} FROM {table}")
                    if not rel or not (root / str(rel)).is_file()]
            conn.executemany(f"DELETE FROM {table} WHERE id = ?", gone)
            if gone:
                report.invalid_dropped[table] = report.invalid_dropped.get(table, 0) + len(gone)
        conn.execute("COMMIT")
        for table, before in counts.items():
            after = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            cascaded = before - after - report.invalid_dropped.get(table, 0)
            if cascaded > 0:
                report.orphans_removed[table] = report.orphans_removed.get(table, 0) + cascaded
    finally:
        conn.close()


def recipe_row(path: Path) -> dict[str, Any] | None:
    """The generation row a picture's recipe chunk describes; None when it carries none.
    InputError when the chunk is there but unsound (too big, not JSON, fields wrong)."""
    recipe = recipe_chunk(path)
    if recipe is None:
        return None
    if recipe.get("format") != RECIPE_FORMAT:
        raise InputError(f"{path}: its recipe is not a MyCanvas recipe")
    prompt, seed, run_id = recipe.get("prompt"), recipe.get("seed"), recipe.get("run_id")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > _MAX_PROMPT_CHARS:
        raise InputError(f"{path}: its recipe's prompt is missing or too long")
    for name, value in (("seed", seed), ("run_id", run_id)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= _MAX_ID):
            raise InputError(f"{path}: its recipe's {name} is not a whole number")
    return {"prompt": prompt, "seed": seed, "run_id": run_id,
            "settings_json": json.dumps(recipe, ensure_ascii=False, sort_keys=True)}


def drop_unsound_generations(root: Path, dest: Path, report: FileReport) -> None:
    """A generation row read from a damaged file is kept only when its picture backs it: the
    image file is there, its bytes hash to its name, and the recipe the PNG carries (when it
    carries one) is the row's own (prompt, seed, settings). A row that fails lost a byte of
    its text: it is dropped (with its scores) and counted, and relist_pictures lists its
    picture again from the file."""
    conn = sqlite3.connect(dest, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        unsound: list[int] = []
        rows = conn.execute("SELECT id, prompt, seed, settings_json, image_file FROM generations "
                            "WHERE deleted_at IS NULL").fetchall()
        for gen_id, prompt, seed, settings_json, rel in rows:
            path = root / str(rel or "")
            if not rel or not path.is_file() or not _hash_matches(path):
                unsound.append(gen_id)
                continue
            try:
                from_file = recipe_row(path)
            except InputError:
                from_file = None
            if from_file is None:
                continue
            settings = json.loads(settings_json or "{}")
            own = {k: v for k, v in settings.items() if k not in ("batch", "index")} \
                if isinstance(settings, dict) else None
            if (prompt, seed, own) != (from_file["prompt"], from_file["seed"],
                                       json.loads(from_file["settings_json"])):
                unsound.append(gen_id)
        if not unsound:
            return
        scores_before = conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        conn.execute("BEGIN")
        conn.executemany("DELETE FROM generations WHERE id = ?", [(i,) for i in unsound])
        conn.execute("COMMIT")
        scores_gone = scores_before - conn.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    finally:
        conn.close()
    report.invalid_dropped["generations"] = (report.invalid_dropped.get("generations", 0)
                                             + len(unsound))
    if scores_gone:
        report.orphans_removed["scores"] = report.orphans_removed.get("scores", 0) + scores_gone


def relist_pictures(root: Path, dest: Path, report: FileReport) -> None:
    """List again, as generations, the pictures under files/ that no row names and whose
    recipe chunk is sound; oldest file first, so ids keep the order they were made in."""
    files = root / "files"
    if not files.is_dir():
        return
    conn = sqlite3.connect(dest, isolation_level=None)
    try:
        named = referenced_files(conn)
        runs = {r[0] for r in conn.execute("SELECT id FROM runs")}
        candidates = sorted((p for p in files.rglob("*.png") if p.is_file()),
                            key=lambda p: (p.stat().st_mtime, p.name))
        conn.execute("BEGIN")
        for path in candidates:
            rel = path.relative_to(root).as_posix()
            if rel in named:
                continue
            try:
                row = recipe_row(path) if _hash_matches(path) else None
            except InputError as exc:
                report.pictures_unreadable.append(f"{rel}: {str(exc).split(': ', 1)[-1]}")
                continue
            if row is None:
                continue
            made = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
            conn.execute(
                "INSERT INTO generations (run_id, prompt, seed, settings_json, image_file, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (row["run_id"] if row["run_id"] in runs else None, row["prompt"], row["seed"],
                 row["settings_json"], rel, made.isoformat(timespec="seconds")))
            report.pictures_relisted += 1
        conn.execute("COMMIT")
    finally:
        conn.close()
