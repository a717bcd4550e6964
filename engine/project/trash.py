"""The gallery's trash: delete generated pictures recoverably, restore them, empty the trash.

A trashed picture keeps its row (deleted_at set) while its image moves from `<rel>` to
`trash/<rel>`; emptying the trash deletes the rows (their scores go with them) and the files.
Mixed into Project, which supplies the connection plumbing.

Files and rows change together, in an order that leaves them consistent wherever a kill lands:

    trash:    link each image into trash/ → one transaction flips the rows → remove originals
    restore:  link each image back        → one transaction flips the rows → remove trash copies
    empty:    one transaction deletes the rows                         → remove the trash files

So every row always names a file that exists: a file is removed only after the commit that
stopped naming it, and only when no row names it any more (content-addressed files may be
shared: the same picture made twice, a dataset image with the same bytes). A kill can only
leave an extra file no row names: a link made before the transaction committed, or an
original not yet removed after it. `tidy_trash` removes those, and every trash operation runs
it first. Everything happens under the catalogue's write lock (BEGIN IMMEDIATE), so two
processes sharing the project never interleave their moves.

A picture whose image file is already missing is trashed without a move (its row keeps the
path it had) and restored the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.atomic import TEMP_MARK, atomic_copy, fsync_dir, replace_durably, temp_path_for
from engine.errors import ProjectError
from engine.project.gallery import generation_ids
from engine.project.records import now_iso
from engine.project.schema import FILE_COLUMNS

TRASH_DIR = "trash"
# JSON columns that may mention a file without being a file column (a recipe naming its
# start image, a dataset item's background): a file they mention is never removed.
_MENTIONING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("generations", "settings_json"),
    ("dataset_items", "provenance_json"),
    ("runs", "config_json"),
)


def trash_rel(rel: str) -> str:
    return f"{TRASH_DIR}/{rel}"


def in_trash(rel: str | None) -> bool:
    return bool(rel) and str(rel).startswith(f"{TRASH_DIR}/")


def original_rel(rel: str) -> str:
    return rel[len(TRASH_DIR) + 1:] if in_trash(rel) else rel


def _reached(point: str) -> None:
    """A named point between the steps of a trash operation (the tests kill a process here
    to prove that every point leaves files and rows consistent)."""


def _named(conn: sqlite3.Connection, rel: str) -> bool:
    """Whether any row names (or mentions) the project file `rel`."""
    for table, column, kind in FILE_COLUMNS:
        if kind == "path":
            if conn.execute(f"SELECT 1 FROM {table} WHERE {column} = ? LIMIT 1",
                            (rel,)).fetchone():
                return True
            continue
        for (text,) in conn.execute(f"SELECT {column} FROM {table} WHERE instr({column}, ?)",
                                    (rel,)):
            with contextlib.suppress(ValueError, AttributeError):
                if rel in {str(v) for v in json.loads(text).values()}:
                    return True
    return any(conn.execute(f"SELECT 1 FROM {table} WHERE instr({column}, ?) LIMIT 1",
                            (rel,)).fetchone() for table, column in _MENTIONING_COLUMNS)


class TrashRecords:
    """Trash, restore and empty the trash of generated pictures. Needs Project's plumbing."""

    if TYPE_CHECKING:
        root: Path

        def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

        def _one(self, table: str, record_id: Any, what: str) -> sqlite3.Row: ...

        def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]: ...

        def abspath(self, rel: str) -> Path: ...

    # ------------------------------------------------------------------ operations

    def trash_generations(self, ids: int | Iterable[int]) -> int:
        """Move pictures to the trash (recoverable until the trash is emptied); returns how
        many were moved. An unknown id changes nothing and raises InputError."""
        wanted = generation_ids(ids)
        moved: list[str] = []
        with self._tx() as conn:
            self._tidy(conn)
            rows = [self._one("generations", gid, "generation") for gid in wanted]
            rows = [r for r in rows if r["deleted_at"] is None]
            changes = []
            for row in rows:
                rel = row["image_file"]
                if rel and self.abspath(rel).is_file():
                    self._link(conn, rel, trash_rel(rel))
                    changes.append((row["id"], trash_rel(rel)))
                    moved.append(rel)
                else:
                    changes.append((row["id"], rel))
            _reached("trash:linked")
            stamp = now_iso()
            conn.executemany("UPDATE generations SET deleted_at = ?, image_file = ? WHERE id = ?",
                             [(stamp, rel, gid) for gid, rel in changes])
        _reached("trash:committed")
        self._remove_unnamed(moved)
        _reached("trash:done")
        return len(rows)

    def restore_generations(self, ids: int | Iterable[int]) -> int:
        """Bring pictures back from the trash; returns how many were restored."""
        wanted = generation_ids(ids)
        left: list[str] = []
        with self._tx() as conn:
            self._tidy(conn)
            rows = [self._one("generations", gid, "generation") for gid in wanted]
            rows = [r for r in rows if r["deleted_at"] is not None]
            changes = []
            for row in rows:
                rel = row["image_file"]
                if in_trash(rel) and self.abspath(rel).is_file():
                    self._link(conn, rel, original_rel(rel))
                    left.append(rel)
                changes.append((original_rel(rel) if rel else rel, row["id"]))
            _reached("restore:linked")
            conn.executemany(
                "UPDATE generations SET deleted_at = NULL, image_file = ? WHERE id = ?", changes)
        _reached("restore:committed")
        self._remove_unnamed(left)
        _reached("restore:done")
        return len(rows)

    def empty_trash(self, ids: int | Iterable[int] | None = None) -> int:
        """Delete trashed pictures for good (all of them, or those of `ids` that are in the
        trash), with their scores and files; returns how many were deleted."""
        with self._tx() as conn:
            self._tidy(conn)
            if ids is None:
                rows = conn.execute("SELECT id, image_file FROM generations"
                                    " WHERE deleted_at IS NOT NULL").fetchall()
            else:
                rows = [self._one("generations", gid, "generation")
                        for gid in generation_ids(ids)]
                rows = [r for r in rows if r["deleted_at"] is not None]
            conn.executemany("DELETE FROM generations WHERE id = ?",
                             [(r["id"],) for r in rows])
        _reached("empty:committed")
        self._remove_unnamed([r["image_file"] for r in rows if in_trash(r["image_file"])])
        _reached("empty:done")
        return len(rows)

    def trash_count(self) -> int:
        """How many pictures are in the trash."""
        rows = self._rows("SELECT COUNT(*) FROM generations WHERE deleted_at IS NOT NULL")
        return int(rows[0][0])

    def tidy_trash(self) -> int:
        """Remove what a killed trash operation left behind (files no row names: links in
        trash/, originals of trashed pictures); returns how many files were removed."""
        with self._tx() as conn:
            return self._tidy(conn)

    # ------------------------------------------------------------------ the steps

    def _link(self, conn: sqlite3.Connection, src_rel: str, dst_rel: str) -> None:
        """Give the file `src_rel` a second name `dst_rel` (a hard link, or a copy where the
        file system has none). A file already at `dst_rel` that a row names is the same
        picture and stays; one no row names is a leftover and is replaced."""
        src, dst = self.abspath(src_rel), self.abspath(dst_rel)
        if dst.is_file() and _named(conn, dst_rel):
            return
        tmp = temp_path_for(dst)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, tmp)
            except OSError:
                atomic_copy(src, tmp)
            replace_durably(tmp, dst)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise ProjectError(f"Could not put {src_rel} at {dst_rel}: "
                               f"{exc.strerror or exc}") from exc

    def _remove_unnamed(self, rels: list[str]) -> None:
        """After the commit: remove each file no row names any more (checked under the write
        lock, so a row another process adds meanwhile is seen)."""
        if not rels:
            return
        with self._tx() as conn:
            for rel in dict.fromkeys(rels):
                if not _named(conn, rel):
                    self._unlink(rel)

    def _unlink(self, rel: str) -> bool:
        path = self.abspath(rel)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ProjectError(f"Could not remove {path}: {exc.strerror or exc}") from exc
        fsync_dir(path.parent)
        if in_trash(rel):  # empty folders of the trash go too
            folder, top = path.parent, self.root / TRASH_DIR
            while folder != top and top in folder.parents:
                try:
                    folder.rmdir()
                except OSError:
                    break
                folder = folder.parent
        return True

    def _tidy(self, conn: sqlite3.Connection) -> int:
        removed = 0
        top = self.root / TRASH_DIR
        if top.is_dir():
            for path in sorted(top.rglob("*")):
                if not path.is_file() or TEMP_MARK in path.name:
                    continue  # temp files: engine.atomic.cleanup_temp_files owns them
                rel = path.relative_to(self.root).as_posix()
                if not _named(conn, rel) and self._unlink(rel):
                    removed += 1
        for (rel,) in conn.execute("SELECT image_file FROM generations WHERE deleted_at IS NOT"
                                   " NULL AND image_file LIKE 'trash/%'").fetchall():
            original = original_rel(rel)
            if self.abspath(original).is_file() and not _named(conn, original) and \
                    self._unlink(original):
                removed += 1
        return removed
