"""The catalogue file: read-only checks, connections, backup, migration, creation.

Opening a project first inspects the catalogue without writing a byte (header read, then an
immutable read-only SQLite connection), so a damaged catalogue, or one from a newer version
of the app, is reported and left exactly as it was.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from engine.atomic import fsync_file, replace_durably, temp_path_for
from engine.errors import ProjectError, first_line
from engine.project.schema import CURRENT_VERSION, apply_migrations

CATALOGUE_NAME = "catalogue.sqlite"
BUSY_TIMEOUT_S = 10.0
def _damaged(path: Path, why: str) -> ProjectError:
    return ProjectError(f"{path} is damaged ({why}); it was left untouched")


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _check_size(path: Path, size: int, page_size: int, page_count: int) -> None:
    """SQLite reads a missing tail as zeros and quick_check may pass; the size tells the truth.

    `page_count` is what SQLite believes (the header's count when the header vouches for it),
    so a file shorter than that lost pages.
    """
    if page_size < 512 or page_size & (page_size - 1):
        raise _damaged(path, "its header is invalid")
    if size % page_size or size < page_count * page_size:
        raise _damaged(path, "the file is truncated")


def inspect_catalogue(path: Path) -> int:
    """The schema version of the catalogue at `path`, checked without writing anything.

    Everything is read through SQLite: a plain open() and close() of the database file would
    drop every POSIX lock this process holds on it, including those of a live connection
    (SQLite's "How To Corrupt An SQLite Database File", 2.2). Call it only while this process
    holds no connection to the file: Project.open guarantees that through its registry.

    Raises ProjectError if the file is damaged, not a MyCanvas catalogue, or newer than
    this app understands.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ProjectError(f"Could not read {path}: {exc.strerror or exc}") from exc
    if size == 0:
        raise _damaged(path, "the file is empty")
    journal_present = any(
        _nonempty(path.with_name(path.name + suffix)) for suffix in ("-wal", "-journal")
    )
    # immutable=1 creates no -wal/-shm files; with a live journal beside the file the
    # committed state needs it, so plain read-only mode is used (those files exist anyway).
    query = "mode=ro" if journal_present else "mode=ro&immutable=1"
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{query}", uri=True,
                               timeout=BUSY_TIMEOUT_S)
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise _damaged(path, "it is not an SQLite database") from exc
            raise
        if not journal_present:
            # Pages may still live in a journal; then SQLite itself judges the size.
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            page_count = int(conn.execute("PRAGMA page_count").fetchone()[0])
            _check_size(path, size, page_size, page_count)
        if version > CURRENT_VERSION:
            raise ProjectError(
                f"{path} was made by a newer version of MyCanvas Studio (catalogue schema "
                f"{version}; this version reads up to schema {CURRENT_VERSION}). "
                "Update MyCanvas Studio to open it."
            )
        problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
    except sqlite3.OperationalError as exc:
        raise ProjectError(f"Could not read {path}: {exc}") from exc
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:  # text of a garbled schema
        raise _damaged(path, first_line(exc)) from exc
    finally:
        if conn is not None:
            conn.close()
    if problems != ["ok"]:
        # quick_check reports over several lines; errors are one line for the user.
        first = " ".join(problems[0].replace("*** in database main ***", "").split())
        raise _damaged(path, f"integrity check failed: {first[:200]}")
    if version < 1 or not has_meta:
        raise ProjectError(f"{path} is an SQLite database but not a MyCanvas catalogue")
    return version


def _configure(conn: sqlite3.Connection) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    # The catalogue is the truth (DESIGN principle 3): commits survive a power cut.
    conn.execute("PRAGMA synchronous = FULL")


def connect(path: Path) -> sqlite3.Connection:
    """A read-write connection shared by threads (the Project serialises use with a lock).

    isolation_level=None: transactions are begun and ended explicitly, never implicitly.
    """
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)
        _configure(conn)
    except sqlite3.Error as exc:
        raise ProjectError(f"Could not open {path}: {exc}") from exc
    return conn


def enable_wal(conn: sqlite3.Connection, path: Path) -> None:
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.Error as exc:
        raise ProjectError(f"Could not switch {path} to WAL mode: {exc}") from exc
    if str(mode).lower() != "wal":
        raise ProjectError(f"Could not switch {path} to WAL mode (it stays in {mode} mode)")


def backup_catalogue(conn: sqlite3.Connection, path: Path, version: int) -> Path:
    """Copy the catalogue to catalogue.v{version}.bak before it is migrated.

    SQLite's online backup copies the committed state (WAL included) page by page through
    SQLite itself: the database file is never opened outside SQLite (see inspect_catalogue).
    """
    backup = path.with_name(f"catalogue.v{version}.bak")
    tmp = temp_path_for(backup)
    try:
        dest = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.backup(dest)
            # The copy is a standalone file: no WAL beside it, readable on its own.
            dest.execute("PRAGMA journal_mode = DELETE")
        finally:
            dest.close()
        fsync_file(tmp)
        replace_durably(tmp, backup)
    except (OSError, sqlite3.Error) as exc:
        raise ProjectError(f"Could not back up {path} to {backup}: {exc}") from exc
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return backup


def migrate(conn: sqlite3.Connection, path: Path, backup: Path) -> None:
    """Bring the catalogue to CURRENT_VERSION in one transaction."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        # Re-read under the write lock: another process may have migrated meanwhile.
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        apply_migrations(conn, min(version, CURRENT_VERSION))
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise ProjectError(
            f"Could not upgrade {path} to schema {CURRENT_VERSION}: {exc}. "
            f"Nothing was changed; a copy is kept in {backup}"
        ) from exc


def build_catalogue(path: Path, meta: Mapping[str, str]) -> None:
    """Write a new catalogue at `path`: built under a temp name, renamed when complete."""
    tmp = temp_path_for(path)
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            _configure(conn)
            conn.execute("BEGIN IMMEDIATE")
            apply_migrations(conn, 0)
            conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            conn.execute("COMMIT")
        finally:
            conn.close()
        replace_durably(tmp, path)
    except (OSError, sqlite3.Error) as exc:
        raise ProjectError(f"Could not create {path}: {exc}") from exc
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
