"""Repair a damaged catalogue: keep the damaged file, rebuild what can be read, report.

What it does, in order:

1. Refuses while the catalogue is in use (by this process, or by another one: its SQLite
   read lock is visible to `fcntl`), because a running app would keep writing to the old file.
2. Reads the damaged file and its write-ahead log page by page (`sqlite_pages`; a lost
   header is rebuilt from the pages, a lost schema version told by the tables' SQL), walks each
   table from the root page that the damaged file's schema table names, and collects the
   rows of leaf pages that no tree reaches any more (their interior page was lost). Such an
   orphan page joins a table only when the freelist was read whole (so it cannot be a page
   of deleted rows) and exactly one table's columns fit every row on it; anything else goes
   to a lost-and-found file, never into the catalogue.
3. Writes a fresh catalogue with this app's schema of the damaged file's version, inserts
   the rows (rows from trees first; a duplicate id keeps the first), then settles foreign
   keys the way the schema says (a row whose parent is lost is removed, or its link set to
   NULL where the schema says ON DELETE SET NULL). A row goes in only when it is valid (each
   value of its column's type, each JSON column parses); the rest are dropped and counted.
4. Checks the content-addressed files the rows name: present, and their bytes hash to
   their name; then lists again the generated pictures whose rows were lost, from their
   files' recipe chunks (`repair_files`).
5. Unless it is a dry run, renames the damaged file (and its -wal/-shm) to
   `catalogue.damaged-<time>.sqlite…`, puts the new one in place, and writes the report
   beside them as JSON. The damaged file's bytes are never changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_text, fsync_file, replace_durably, temp_path_for
from engine.errors import ProjectError
from engine.project.catalogue import open_catalogues
from engine.project.connection import CATALOGUE_NAME, inspect_catalogue
from engine.project.repair_files import (
    check_files,
    drop_rows_without_files,
    drop_unsound_generations,
    relist_pictures,
)
from engine.project.schema import CURRENT_VERSION, apply_migrations
from engine.project.sqlite_pages import (
    LEAF_TABLE,
    Cell,
    PageError,
    PageImage,
    Value,
    rebuild_header,
)

# SQLite's lock bytes (os_unix.c): a connection holds a read lock in this range while open.
_PENDING_BYTE = 0x40000000
_SHARED_FIRST, _SHARED_SIZE = _PENDING_BYTE + 2, 510


@dataclass
class RepairReport:
    catalogue: str
    schema_version: int
    damaged: bool
    problems: list[str] = field(default_factory=list)
    rows_read: dict[str, int] = field(default_factory=dict)  # table -> rows read (before)
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows in the new catalogue
    invalid_dropped: dict[str, int] = field(default_factory=dict)  # wrong types, bad JSON
    rows_from_orphan_pages: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: dict[str, int] = field(default_factory=dict)
    orphans_removed: dict[str, int] = field(default_factory=dict)  # parent row lost
    links_cleared: dict[str, int] = field(default_factory=dict)  # ON DELETE SET NULL
    lost_rows: int = 0  # rows that could be read but not placed (see lost_and_found)
    files_checked: int = 0
    files_missing: list[str] = field(default_factory=list)
    files_corrupt: list[str] = field(default_factory=list)
    pictures_relisted: int = 0  # generations listed again from their PNGs' recipes
    pictures_unreadable: list[str] = field(default_factory=list)  # unlisted, recipe unsound
    kept_damaged: str | None = None
    report_file: str | None = None
    lost_and_found: str | None = None
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """What was saved and what was lost, in a few lines for a person."""
        if not self.damaged and not self.rows:
            return f"{self.catalogue} passed its checks; nothing to repair."
        saved = ", ".join(f"{n} {t}" for t, n in self.rows.items() if n and t != "meta")
        lines = [f"Recovered: {saved or 'no rows'}."]
        if self.rows_read or self.pictures_relisted:
            lines.append("Rows per table, read from the damaged file -> kept: " + ", ".join(
                f"{t} {self.rows_read.get(t, 0)} -> {n}" for t, n in self.rows.items()
                if t != "meta" and (n or self.rows_read.get(t))) + ".")
        if self.pictures_relisted:
            lines.append(f"Listed again from their files' recipes: {self.pictures_relisted} "
                         "picture(s) whose rows were lost (their scores were lost with them: "
                         "`mycanvas score` makes them again).")
        if self.pictures_unreadable:
            lines.append(f"{len(self.pictures_unreadable)} unlisted picture file(s) carry no "
                         f"usable recipe (first: {self.pictures_unreadable[0]}).")
        dropped = sum(self.invalid_dropped.values())
        if dropped:
            lines.append(f"Dropped {dropped} row(s) that could be read but were not valid "
                         f"({_counts(self.invalid_dropped)}).")
        if self.problems:
            lines.append(f"Unreadable parts: {len(self.problems)} (first: {self.problems[0]}).")
        removed = sum(self.orphans_removed.values())
        if removed:
            lines.append(f"Removed {removed} row(s) whose parent was lost "
                         f"({_counts(self.orphans_removed)}).")
        if self.lost_rows:
            where = (f"they are kept in {self.lost_and_found}" if self.lost_and_found else
                     "a repair would keep them in a lost-and-found file")
            lines.append(f"{self.lost_rows} row(s) could be read but not placed; {where}.")
        if self.files_missing or self.files_corrupt:
            lines.append(f"Files: {len(self.files_missing)} missing, "
                         f"{len(self.files_corrupt)} damaged, of {self.files_checked}.")
        else:
            lines.append(f"Files: all {self.files_checked} present and intact.")
        if self.dry_run:
            lines.append("Dry run: nothing was written.")
        elif self.kept_damaged:
            lines.append(f"The damaged catalogue is kept as {self.kept_damaged}.")
        return "\n".join(lines)


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{t}: {n}" for t, n in d.items() if n)


def _in_use_by_other_process(path: Path) -> int | None:
    """The pid of another process with an SQLite connection on `path`, else None.

    Opening a descriptor here is safe only because this process holds no connection to
    the file (checked first by the caller). Where fcntl is missing (Windows), SQLite's own
    locking refuses the rebuild instead.
    """
    try:
        import fcntl
    except ImportError:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    # struct flock (Linux): short l_type, short l_whence, off_t l_start, off_t l_len, pid_t
    layout = "hhqqi4x"
    try:
        probe = struct.pack(layout, fcntl.F_WRLCK, os.SEEK_SET, _SHARED_FIRST, _SHARED_SIZE, 0)
        kind, _whence, _start, _len, pid = struct.unpack(
            layout, fcntl.fcntl(fd, fcntl.F_GETLK, probe))
        return pid if kind != fcntl.F_UNLCK else None
    except (OSError, struct.error):
        return None
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- schema facts


@dataclass
class _Table:
    name: str
    columns: list[tuple[str, str, bool]]  # (name, declared type, not null)
    rowid_alias: str | None
    min_width: int  # columns when the table was created: older rows may hold only these


def _reference_schema(version: int) -> dict[str, _Table]:
    """Our own schema at `version`, from the migrations (never from the damaged file)."""
    tables: dict[str, _Table] = {}
    first_width: dict[str, int] = {}
    ref = sqlite3.connect(":memory:")
    try:
        for v in range(1, version + 1):
            apply_migrations(ref, v - 1, v)
            for (name,) in ref.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                first_width.setdefault(name, len(ref.execute(
                    f"PRAGMA table_info({name})").fetchall()))
        for (name,) in ref.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid"):
            info = ref.execute(f"PRAGMA table_info({name})").fetchall()
            pks = [row for row in info if row[5]]
            alias = pks[0][1] if len(pks) == 1 and pks[0][2].upper() == "INTEGER" else None
            tables[name] = _Table(name, [(r[1], r[2].upper(), bool(r[3])) for r in info],
                                  alias, first_width[name])
    finally:
        ref.close()
    return tables


def _reference_sql(version: int) -> dict[str, str]:
    """Each table's CREATE statement at `version`, as SQLite stores it (ALTERs included)."""
    ref = sqlite3.connect(":memory:")
    try:
        apply_migrations(ref, 0, version)
        return {name: " ".join(sql.split()) for name, sql in ref.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'")}
    finally:
        ref.close()


def _version_from_schema(schema_rows: list[Cell]) -> int | None:
    """The schema version whose tables' SQL matches the damaged file's schema rows (the
    header that said it is lost); None when no version matches."""
    found = {str(v[1]): " ".join(v[4].split()) for v in (c.values for c in schema_rows)
             if len(v) >= 5 and v[0] == "table" and isinstance(v[4], str)}
    if not found:
        return None
    for version in range(CURRENT_VERSION, 0, -1):
        ref = _reference_sql(version)
        if all(ref.get(name) == sql for name, sql in found.items()):
            return version
    return None


def _is_json(value: Value) -> bool:
    try:
        json.loads(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _fitting_tables(tables: dict[str, _Table], cells: list[Cell]) -> list[_Table]:
    """Tables whose columns fit every row of an orphan page. Rows are written with every
    column their table had at the time, so a table whose full width matches wins over one
    that only fits as an older, narrower row."""
    fitting = [t for t in tables.values() if all(_fits(t, c.values) for c in cells)]
    exact = [t for t in fitting if all(len(c.values) == len(t.columns) for c in cells)]
    return exact or fitting


def _value_fits(name: str, decl: str, value: Value) -> bool:
    if decl == "INTEGER":
        return isinstance(value, int)
    if decl == "REAL":  # SQLite may store a whole REAL as an integer
        return isinstance(value, int | float)
    if decl == "TEXT":
        return isinstance(value, str) and (not name.endswith("_json") or _is_json(value))
    return True


def _fits(table: _Table, values: list[Value]) -> bool:
    if not table.min_width <= len(values) <= len(table.columns):
        return False
    for (name, decl, not_null), value in zip(table.columns, values, strict=False):
        if name == table.rowid_alias:
            if value is not None:
                return False
        elif value is None:
            if not_null:
                return False
        elif not _value_fits(name, decl, value):
            return False
    return True


# --------------------------------------------------------------------------- reading


@dataclass
class _Recovered:
    tree_rows: dict[str, list[Cell]]
    orphan_rows: dict[str, list[Cell]]
    lost: list[dict[str, Any]]
    problems: list[str]


def _read_rows(image: PageImage, tables: dict[str, _Table], schema_rows: list[Cell],
               visited: set[int], problems: list[str]) -> _Recovered:
    roots: dict[str, int] = {}
    for cell in schema_rows:
        v = cell.values
        if len(v) >= 4 and v[0] == "table" and v[1] in tables and isinstance(v[3], int):
            roots[str(v[1])] = v[3]
    tree_rows: dict[str, list[Cell]] = {}
    for name in tables:
        if name not in roots:
            problems.append(f"the schema no longer says where table {name} starts")
            continue
        rows, table_problems = image.walk_table(roots[name], visited)
        tree_rows[name] = rows
        problems.extend(table_problems)
    # Index b-trees are rebuilt, not read; their pages count as accounted for.
    for cell in schema_rows:
        v = cell.values
        if len(v) >= 4 and v[0] == "index" and isinstance(v[3], int):
            _mark_index_pages(image, v[3], visited)

    free, freelist_whole = image.freelist()
    orphan_rows: dict[str, list[Cell]] = {}
    lost: list[dict[str, Any]] = []
    for number in sorted(image.pages):
        if number in visited or number in free or image.page_type(number) != LEAF_TABLE:
            continue
        try:
            cells = [c for c in image.leaf_cells(number, set()) if isinstance(c, Cell)]
        except PageError as exc:  # an unreached page that is itself damaged
            problems.append(str(exc))
            continue
        if not cells:
            continue
        fitting = _fitting_tables(tables, cells)
        if freelist_whole and len(fitting) == 1:
            orphan_rows.setdefault(fitting[0].name, []).extend(cells)
        else:
            why = ("the freelist is damaged, so the page may hold deleted rows"
                   if not freelist_whole else f"{len(fitting)} tables fit its rows")
            for c in cells:
                lost.append({"page": number, "rowid": c.rowid, "why": why,
                             "tables": [t.name for t in fitting],
                             "values": [v.hex() if isinstance(v, bytes) else v
                                        for v in c.values]})
    if not freelist_whole:
        problems.append("the freelist is damaged")
    return _Recovered(tree_rows, orphan_rows, lost, problems)


def _mark_index_pages(image: PageImage, root: int, visited: set[int]) -> None:
    stack = [root]
    while stack:
        number = stack.pop()
        if number in visited:
            continue
        visited.add(number)
        data = image.pages.get(number)
        if data is None or data[0] != 2:  # interior index page: follow its children
            continue
        with contextlib.suppress(PageError, ValueError):
            n_cells = int.from_bytes(data[3:5], "big")
            for i in range(n_cells):
                offset = int.from_bytes(data[12 + 2 * i:14 + 2 * i], "big")
                stack.append(int.from_bytes(data[offset:offset + 4], "big"))
            stack.append(int.from_bytes(data[8:12], "big"))


# --------------------------------------------------------------------------- writing


def _insert(conn: sqlite3.Connection, table: _Table, cell: Cell) -> bool:
    names = [c[0] for c in table.columns[:len(cell.values)]]
    values = list(cell.values)
    if table.rowid_alias is not None:
        values[names.index(table.rowid_alias)] = cell.rowid
    else:
        names.insert(0, "rowid")
        values.insert(0, cell.rowid)
    cols = ", ".join(names)
    marks = ", ".join("?" for _ in names)
    try:
        cur = conn.execute(f"INSERT OR IGNORE INTO {table.name} ({cols}) VALUES ({marks})",
                           values)
    except sqlite3.IntegrityError:  # a CHECK constraint: the row is not one we could write
        return False
    return cur.rowcount == 1


def _settle_foreign_keys(conn: sqlite3.Connection, report: RepairReport) -> None:
    """Apply each broken link's ON DELETE action, until no link is broken."""
    for _round in range(100):
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        if not broken:
            return
        for table, rowid, _parent, fk_id in broken:
            fks = {row[0]: row for row in conn.execute(f"PRAGMA foreign_key_list({table})")}
            fk = fks.get(fk_id)
            if fk is not None and str(fk[6]).upper() == "SET NULL":
                conn.execute(f"UPDATE {table} SET {fk[3]} = NULL WHERE rowid = ?", (rowid,))
                report.links_cleared[table] = report.links_cleared.get(table, 0) + 1
            else:
                conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
                report.orphans_removed[table] = report.orphans_removed.get(table, 0) + 1
    raise ProjectError("Could not settle the recovered rows' links")


def _build(dest: Path, version: int, tables: dict[str, _Table], found: _Recovered,
           report: RepairReport) -> None:
    conn = sqlite3.connect(dest, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("BEGIN")
        apply_migrations(conn, 0, version)
        for table in tables.values():
            dropped = invalid = 0
            for source in (found.tree_rows, found.orphan_rows):
                for cell in source.get(table.name, []):
                    if not _fits(table, cell.values):
                        invalid += 1
                    elif not _insert(conn, table, cell):
                        dropped += 1
            report.rows_read[table.name] = sum(len(source.get(table.name, []))
                                               for source in (found.tree_rows, found.orphan_rows))
            if invalid:
                report.invalid_dropped[table.name] = invalid
            if dropped:
                report.duplicates_dropped[table.name] = dropped
            if found.orphan_rows.get(table.name):
                report.rows_from_orphan_pages[table.name] = len(found.orphan_rows[table.name])
        _settle_foreign_keys(conn, report)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _count_and_check(dest: Path, tables: dict[str, _Table], report: RepairReport) -> None:
    conn = sqlite3.connect(dest)
    try:
        for name in tables:
            report.rows[name] = int(conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0])
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise ProjectError(f"The rebuilt catalogue failed its check: {problems[0]}")
    finally:
        conn.close()


def _invalid_rows(catalogue: Path) -> str | None:
    """Why a catalogue that SQLite reads whole still cannot be used (JSON that does not parse,
    a row whose parent is gone), or None. Read through SQLite, read-only."""
    journal = any(catalogue.with_name(catalogue.name + s).is_file() for s in ("-wal", "-journal"))
    query = "mode=ro" if journal else "mode=ro&immutable=1"
    conn = sqlite3.connect(f"{catalogue.resolve().as_uri()}?{query}", uri=True)
    try:
        bad: list[str] = []
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for column in (r[1] for r in conn.execute(f"PRAGMA table_info({table})")):
                if column.endswith("_json"):
                    n = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} IS NOT NULL "
                                     f"AND NOT json_valid({column})").fetchone()[0]
                    if n:
                        bad.append(f"{table}.{column}: {n}")
        if bad:
            return f"row(s) hold JSON that does not parse ({', '.join(bad)})"
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            return f"{len(broken)} row(s) name a parent row that is gone"
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        conn.close()
    return None


# --------------------------------------------------------------------------- entry point


def _page_image(main: bytes, wal: bytes, report: RepairReport) -> PageImage | None:
    """The damaged file as pages, its header rebuilt when only the header is lost; None when
    nothing of it reads as an SQLite file (then only the files can give rows back)."""
    try:
        image = PageImage.from_bytes(main, wal)
    except PageError as exc:
        header = rebuild_header(main, wal)
        if header is None:
            report.problems.append(f"no page of the catalogue could be read ({exc})")
            return None
        image = PageImage.from_bytes(main, wal, header)
    report.problems.extend(image.problems)
    return image


def repair_project(folder: str | os.PathLike[str], *, dry_run: bool = False,
                   force: bool = False) -> RepairReport:
    """Rebuild the catalogue of the project in `folder` from what can still be read.

    A catalogue that passes its checks is left alone unless `force`. Raises ProjectError
    when the project is in use or nothing at all can be read.
    """
    root = Path(folder).absolute()
    catalogue = root / CATALOGUE_NAME
    if not catalogue.is_file():
        raise ProjectError(f"{root} is not a MyCanvas project (no {CATALOGUE_NAME})")
    if any(p.resolve() == catalogue.resolve() for p in open_catalogues()):
        raise ProjectError(f"{root} is open in this program; close it before repairing it")
    pid = _in_use_by_other_process(catalogue)
    if pid is not None:
        raise ProjectError(f"{root} is in use by another program (process {pid}); "
                           "close it before repairing the project")
    damaged, why = False, ""
    try:
        inspect_catalogue(catalogue)
        invalid = _invalid_rows(catalogue)
        if invalid:
            damaged, why = True, invalid
    except ProjectError as exc:
        damaged, why = True, str(exc)
    report = RepairReport(str(catalogue), CURRENT_VERSION, damaged, dry_run=dry_run)
    if not damaged and not force:
        return report
    if why:
        report.problems.append(why)

    main = catalogue.read_bytes()
    wal_path = catalogue.with_name(CATALOGUE_NAME + "-wal")
    wal = wal_path.read_bytes() if wal_path.is_file() else b""
    image = _page_image(main, wal, report)
    visited: set[int] = set()
    schema_rows: list[Cell] = []
    problems: list[str] = []
    if image is not None:
        schema_rows, problems = image.walk_table(1, visited)
    version = image.header.user_version if image is not None else 0
    if not 1 <= version <= CURRENT_VERSION:
        guessed = _version_from_schema(schema_rows)
        report.problems.append(f"the schema version ({version}) is unreadable; " + (
            f"the tables' SQL says {guessed}" if guessed else f"assuming {CURRENT_VERSION}"))
        version = guessed or CURRENT_VERSION
    report.schema_version = version
    tables = _reference_schema(version)
    if image is not None:
        found = _read_rows(image, tables, schema_rows, visited, problems)
    else:
        found = _Recovered({}, {}, [], [])
    report.problems.extend(found.problems)
    report.lost_rows = len(found.lost)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = temp_path_for(catalogue)
    try:
        _build(dest, version, tables, found, report)
        check_files(root, dest, report)
        drop_rows_without_files(root, dest, report)
        drop_unsound_generations(root, dest, report)
        relist_pictures(root, dest, report)
        _count_and_check(dest, tables, report)
        if dry_run:
            return report
        fsync_file(dest)
        if found.lost:
            lost_file = root / f"catalogue.lost-and-found-{stamp}.json"
            atomic_write_text(lost_file, json.dumps(found.lost, indent=1, default=str))
            report.lost_and_found = str(lost_file)
        kept = root / f"catalogue.damaged-{stamp}.sqlite"
        # Keep the damaged file under a new name (a hard link: its bytes are never touched),
        # move its -wal/-shm beside it (an old log must never meet the new file), then put
        # the rebuilt catalogue in place in one rename.
        try:
            os.link(catalogue, kept)
        except OSError:
            os.replace(catalogue, kept)
        for suffix in ("-wal", "-shm"):
            side = catalogue.with_name(CATALOGUE_NAME + suffix)
            if side.exists():
                os.replace(side, kept.with_name(kept.name + suffix))
        replace_durably(dest, catalogue)
        report.kept_damaged = str(kept)
        report_file = root / f"catalogue.repair-{stamp}.json"
        report.report_file = str(report_file)
        atomic_write_text(report_file, json.dumps(asdict(report), indent=1))
    finally:
        for leftover in (dest, dest.with_name(dest.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return report

