"""A MyCanvas project: a folder with `catalogue.sqlite` and content-addressed files.

    project/
      catalogue.sqlite      the catalogue (WAL mode; schema version in PRAGMA user_version)
      files/ab/<sha>.png    content-addressed files (photos, masks, images, weights)
      runs/                 training and extraction runs

One Project per catalogue per process: opening a project this process already has open
returns the same instance (reference-counted; the last close() closes it). A second
connection would be harmless, but the checks that run before one is made are not: see
`connection.inspect_catalogue`. One connection per Project, shared by threads under a lock;
every write is a transaction.
Names typed by the user are stored as text and never become paths, except through
`concept_dir_name`.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from engine import __version__
from engine.atomic import cleanup_temp_files
from engine.errors import InputError, ProjectError
from engine.paths import safe_component
from engine.project import connection
from engine.project.class_words import check_class_word
from engine.project.concept_removal import ConceptRemoval
from engine.project.connection import CATALOGUE_NAME
from engine.project.files import FileStore, check_relative
from engine.project.gallery import GalleryRecords
from engine.project.gallery_export import GalleryExport
from engine.project.job_journal import JobJournal
from engine.project.provisional import ProvisionalRecords
from engine.project.records import Concept, Mask, Photo, now_iso
from engine.project.schema import CURRENT_VERSION, TABLES
from engine.project.stage_tables import PipelineRecords
from engine.project.trash import TrashRecords

SUBFOLDERS: tuple[str, ...] = ("files", "runs")
NAME_MAX_LEN = 64
# What a concept token looks like ("<mochi>"): the catalogue refuses others, and the window
# checks a typed token against the same pattern.
TOKEN_PATTERN = re.compile(r"^<[a-z0-9](?:[a-z0-9_-]{0,46}[a-z0-9])?>$")


def check_token(token: object) -> None:
    """A concept token looks like <name> (what the tokenizer and the prompts expect)."""
    if not isinstance(token, str) or not TOKEN_PATTERN.match(token):
        raise InputError(f"Concept token {token!r} must look like <name>: lowercase letters, "
                         "digits, '-' or '_' inside angle brackets")


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Control characters, lone surrogates and line/paragraph separators break one-line labels.
_BAD_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


def concept_token(name: str, taken: Iterable[str]) -> str:
    """The token a concept called `name` gets ("<mochi>"), numbered when `taken` holds it
    ("<mochi2>"); the window proposes the same one before the concept is added."""
    # No dots: "nul.txt" must not yield a folder name Windows reserves (see concept_dir_name).
    base = safe_component(name, fallback="concept", max_len=32).replace(".", "-")
    base = base.strip("-_") or "concept"
    used = set(taken)
    token, n = f"<{base}>", 2
    while token in used:
        token, n = f"<{base}{n}>", n + 1
    return token


def clean_label(value: Any, what: str, max_len: int = NAME_MAX_LEN) -> str:
    """A user-typed one-line label: NFC, stripped, 1..max_len characters, no control chars."""
    if not isinstance(value, str):
        raise InputError(f"{what} must be text, got {value!r}")
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        raise InputError(f"{what} must not be empty")
    if len(text) > max_len:
        raise InputError(f"{what} is too long ({len(text)} characters; at most {max_len})")
    for ch in text:
        if unicodedata.category(ch) in _BAD_CATEGORIES:
            raise InputError(f"{what} must not contain control characters (U+{ord(ch):04X})")
    return text


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"{what} must be a positive integer, got {value!r}")
    return value


def concept_dir_name(concept: Concept) -> str:
    """A folder name for a concept (exports): from its token, which is unique and never
    changes when the concept is renamed, passed through safe_component."""
    return safe_component(concept.token.strip("<>"), fallback=f"concept-{concept.id}")


def _concept(row: sqlite3.Row) -> Concept:
    return Concept(id=row["id"], name=row["name"], token=row["token"],
                   class_word=row["class_word"], created_at=row["created_at"] or "")


def _photo(row: sqlite3.Row) -> Photo:
    return Photo(id=row["id"], concept_id=row["concept_id"], sha256=row["sha256"],
                 file=row["file"], original_name=row["original_name"] or "",
                 width=row["width"], height=row["height"], added_at=row["added_at"] or "")


def _mask(row: sqlite3.Row) -> Mask:
    return Mask(id=row["id"], photo_id=row["photo_id"], concept_id=row["concept_id"],
                file=row["file"], cutout_file=row["cutout_file"], method=row["method"] or "",
                quality=row["quality"], created_at=row["created_at"] or "",
                profile=row["profile"] or "", test_model=bool(row["test_model"]),
                flag=row["flag"] or "")


# Open projects of this process, by (pid, device, inode) of their catalogue file. The pid
# keeps a forked child from sharing its parent's connections.
_OPEN_LOCK = threading.RLock()
_OPEN: dict[tuple[int, int, int], Project] = {}


def _catalogue_key(catalogue: Path) -> tuple[int, int, int]:
    try:
        st = catalogue.stat()
    except OSError as exc:
        raise ProjectError(f"Could not read {catalogue}: {exc.strerror or exc}") from exc
    return (os.getpid(), st.st_dev, st.st_ino)


def open_catalogues() -> list[Path]:
    """The catalogue files this process holds a live connection to (for checks in tests)."""
    with _OPEN_LOCK:
        return [p.catalogue_path for p in _OPEN.values() if not p.closed]


class Project(PipelineRecords, GalleryRecords, TrashRecords, GalleryExport, JobJournal,
              ProvisionalRecords, ConceptRemoval):
    """An open project. Use Project.create / Project.open, then close() (or `with`).

    Every open() is matched by one close(); the connection closes with the last one.
    """

    def __init__(self, root: Path, conn: sqlite3.Connection) -> None:
        self.root = root
        self.catalogue_path = root / CATALOGUE_NAME
        self.files = FileStore(root)
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.RLock()
        self._tx_depth = 0
        self._refs = 1
        self._key: tuple[int, int, int] | None = None

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def create(cls, folder: str | os.PathLike[str], name: str) -> Project:
        """Make a new project in `folder`, which must be empty or not exist yet."""
        root = Path(folder).absolute()
        project_name = clean_label(name, "Project name", max_len=200)
        if (root / CATALOGUE_NAME).exists():
            raise ProjectError(f"{root} already holds a MyCanvas project; open it instead")
        if root.exists() and not root.is_dir():
            raise ProjectError(f"{root} is a file, not a folder")
        try:
            if root.is_dir() and any(root.iterdir()):
                raise ProjectError(f"{root} is not empty; choose an empty or new folder")
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"Could not create {root}: {exc.strerror or exc}") from exc
        meta = {"name": project_name, "created_at": now_iso(), "app_version": __version__}
        connection.build_catalogue(root / CATALOGUE_NAME, meta)
        return cls.open(root)

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> Project:
        """Open a project, upgrading an older catalogue after backing it up.

        If this process has the project open already, that same instance is returned (and
        must be closed once more). Nothing is written until the catalogue has passed its
        read-only checks.
        """
        root = Path(folder).absolute()
        if not root.is_dir():
            raise ProjectError(f"{root} does not exist or is not a folder")
        catalogue = root / CATALOGUE_NAME
        if not catalogue.is_file():
            raise ProjectError(f"{root} is not a MyCanvas project (no {CATALOGUE_NAME})")
        with _OPEN_LOCK:
            key = _catalogue_key(catalogue)
            existing = _OPEN.get(key)
            if existing is not None:
                with existing._lock:
                    if not existing.closed:
                        existing._refs += 1
                        return existing
            project = cls._open_new(root, catalogue)
            project._key = key
            _OPEN[key] = project
            return project

    @classmethod
    def _open_new(cls, root: Path, catalogue: Path) -> Project:
        # Safe only while this process holds no connection to `catalogue` (the registry).
        version = connection.inspect_catalogue(catalogue)
        # Temp files of writers that were killed; a live writer's (its pid is in the name)
        # is kept, so the worker's half-written file survives the GUI opening the project.
        cleanup_temp_files(root)
        conn = connection.connect(catalogue)
        try:
            if version < CURRENT_VERSION:
                backup = connection.backup_catalogue(conn, catalogue, version)
                connection.migrate(conn, catalogue, backup)
            connection.enable_wal(conn, catalogue)
            for sub in SUBFOLDERS:
                (root / sub).mkdir(exist_ok=True)
        except BaseException:
            conn.close()
            raise
        return cls(root, conn)

    def close(self) -> None:
        """Give back one open(); the last one closes the connection."""
        with _OPEN_LOCK, self._lock:
            if self._conn is None:
                return
            self._refs -= 1
            if self._refs > 0:
                return
            self._conn.close()
            self._conn = None
            if self._key is not None and _OPEN.get(self._key) is self:
                del _OPEN[self._key]

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> Project:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r}{', closed' if self.closed else ''})"

    # ------------------------------------------------------------------ plumbing

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ProjectError(f"Project {self.root} is closed")
        return self._conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; nested use joins the outer one."""
        with self._lock:
            conn = self._live()
            if self._tx_depth:
                self._tx_depth += 1
                try:
                    yield conn
                finally:
                    self._tx_depth -= 1
                return
            self._tx_depth = 1
            try:
                # IMMEDIATE takes the write lock up front, so a read-then-write cannot
                # fail half-way with SQLITE_BUSY.
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise ProjectError(f"Could not write {self.catalogue_path}: {exc}") from exc
                raise
            finally:
                self._tx_depth = 0

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._live().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise ProjectError(f"Could not read {self.catalogue_path}: {exc}") from exc

    def _one(self, table: str, record_id: Any, what: str) -> sqlite3.Row:
        # `table` is always one of our literal table names, never user input.
        if isinstance(record_id, bool) or not isinstance(record_id, int):
            raise InputError(f"{what} id must be an integer, got {record_id!r}")
        rows = self._rows(f"SELECT * FROM {table} WHERE id = ?", (record_id,))
        if not rows:
            raise InputError(f"No {what} with id {record_id}")
        return rows[0]

    # ------------------------------------------------------------------ meta, files

    def meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not key:
            raise InputError(f"Meta key must be non-empty text, got {key!r}")
        if not isinstance(value, str):
            raise InputError(f"Meta value for {key!r} must be text, got {value!r}")
        with self._tx() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    @property
    def name(self) -> str:
        return self.meta("name") or self.root.name

    @property
    def schema_version(self) -> int:
        return int(self._rows("PRAGMA user_version")[0][0])

    def data_version(self) -> int:
        """A number that changes whenever another connection (another process: the worker,
        the command line) commits to the catalogue; this process's own commits leave it
        as it is. Costs microseconds: the window polls it to see changes it did not make."""
        return int(self._rows("PRAGMA data_version")[0][0])

    def summary(self) -> dict[str, Any]:
        """Name, schema version, app version, created_at, then the row count of each table
        (for `mycanvas info` and the project view)."""
        out: dict[str, Any] = {"name": self.name, "schema_version": self.schema_version,
                               "app_version": self.meta("app_version"),
                               "created_at": self.meta("created_at")}
        for table in TABLES:
            if table != "meta":
                out[table] = int(self._rows(f"SELECT COUNT(*) FROM {table}")[0][0])
        return out

    def put_bytes(self, data: bytes, ext: str) -> str:
        return self.put_bytes_tracked(data, ext)[0]

    def put_bytes_tracked(self, data: bytes, ext: str) -> tuple[str, bool]:
        """put_bytes, and whether this call wrote the file: a caller whose catalogue write
        then fails removes what it added, and only that."""
        rel, created = self.files.put_bytes_tracked(data, ext)
        if created:
            self._note_file(rel)
        return rel, created

    def put_file(self, src_path: str | os.PathLike[str], ext: str | None = None) -> str:
        return self.files.put_file(src_path, ext)

    def abspath(self, rel: str) -> Path:
        return self.files.abspath(rel)

    def sha256_of(self, rel: str) -> str:
        return self.files.sha256_of(rel)

    # ------------------------------------------------------------------ concepts

    def _unique_token(self, conn: sqlite3.Connection, name: str) -> str:
        return concept_token(name, (row[0] for row in conn.execute("SELECT token FROM concepts")))

    def _check_name_free(self, conn: sqlite3.Connection, name: str, own_id: int | None) -> None:
        # The column is COLLATE NOCASE, so this comparison ignores ASCII case.
        row = conn.execute("SELECT id, name FROM concepts WHERE name = ?", (name,)).fetchone()
        if row is not None and row["id"] != own_id:
            raise InputError(f"Concept name {name!r} is already used (by {row['name']!r})")

    def add_concept(self, name: str, class_word: str, token: str | None = None) -> Concept:
        clean_name = clean_label(name, "Concept name")
        clean_class = check_class_word(class_word)
        if token is not None:
            check_token(token)
        with self._tx() as conn:
            self._check_name_free(conn, clean_name, None)
            if token is None:
                token = self._unique_token(conn, clean_name)
            elif conn.execute("SELECT 1 FROM concepts WHERE token = ?", (token,)).fetchone():
                raise InputError(f"Concept token {token!r} is already used")
            cur = conn.execute(
                "INSERT INTO concepts (name, token, class_word, created_at) VALUES (?, ?, ?, ?)",
                (clean_name, token, clean_class, now_iso()),
            )
            concept = _concept(conn.execute("SELECT * FROM concepts WHERE id = ?",
                                            (cur.lastrowid,)).fetchone())
        self._note_added("concepts", concept.id)
        return concept

    def rename_concept(self, concept_id: int, new_name: str | None = None,
                       token: str | None = None) -> Concept:
        """Change the display name and/or the token. A new token is what new prompts,
        captions and runs use (the dataset's token captions are rewritten); runs already
        trained keep the token they were trained on (engine/project/concept_removal.py).
        A token change is refused while a job runs on data that uses the concept."""
        old = self.concept(concept_id)
        clean_name = old.name if new_name is None else clean_label(new_name, "Concept name")
        if token is not None and token != old.token:
            check_token(token)
            self._refuse_if_busy(concept_id, "change the token of")
        with self._tx() as conn:
            self._one("concepts", concept_id, "concept")
            self._check_name_free(conn, clean_name, concept_id)
            if token is not None and token != old.token:
                if conn.execute("SELECT 1 FROM concepts WHERE token = ?", (token,)).fetchone():
                    raise InputError(f"Concept token {token!r} is already used")
                conn.execute("UPDATE concepts SET token = ? WHERE id = ?", (token, concept_id))
                conn.execute("UPDATE dataset_items SET token_caption = replace(token_caption,"
                             " ?, ?) WHERE instr(token_caption, ?)", (old.token, token, old.token))
            conn.execute("UPDATE concepts SET name = ? WHERE id = ?", (clean_name, concept_id))
        return self.concept(concept_id)

    def set_class_word(self, concept_id: int, class_word: str) -> Concept:
        clean_class = check_class_word(class_word)
        with self._tx() as conn:
            self._one("concepts", concept_id, "concept")
            conn.execute("UPDATE concepts SET class_word = ? WHERE id = ?",
                         (clean_class, concept_id))
        return self.concept(concept_id)

    def delete_concept(self, concept_id: int) -> None:
        """Delete a concept with its photos, masks and scores (ON DELETE CASCADE).

        Files stay in files/: they are content-addressed and may be shared.
        """
        with self._tx() as conn:
            self._one("concepts", concept_id, "concept")
            conn.execute("DELETE FROM concepts WHERE id = ?", (concept_id,))

    def concepts(self) -> list[Concept]:
        return [_concept(r) for r in self._rows("SELECT * FROM concepts ORDER BY id")]

    def concept(self, concept_id: int) -> Concept:
        """The concept with this id; InputError if there is none."""
        return _concept(self._one("concepts", concept_id, "concept"))

    def concept_by_name(self, name: str) -> Concept | None:
        """The concept with this name (ignoring ASCII case), or None."""
        if not isinstance(name, str):
            return None
        clean = unicodedata.normalize("NFC", name).strip()
        rows = self._rows("SELECT * FROM concepts WHERE name = ?", (clean,))
        return _concept(rows[0]) if rows else None

    # ------------------------------------------------------------------ photos, masks

    def add_photo(self, concept_id: int, rel_file: str, sha256: str, original_name: str,
                  width: int, height: int) -> Photo:
        """Record a photo already stored with put_file; the same photo again returns the
        existing record."""
        check_relative(rel_file, "Photo file")
        if not isinstance(sha256, str) or not _SHA256.match(sha256):
            raise InputError(f"Photo sha256 must be 64 lowercase hex digits, got {sha256!r}")
        if not isinstance(original_name, str):
            raise InputError(f"Photo original_name must be text, got {original_name!r}")
        _positive_int(width, "Photo width")
        _positive_int(height, "Photo height")
        with self._tx() as conn:
            self._one("concepts", concept_id, "concept")
            existing = conn.execute("SELECT * FROM photos WHERE concept_id = ? AND sha256 = ?",
                                    (concept_id, sha256)).fetchone()
            if existing is not None:
                return _photo(existing)
            cur = conn.execute(
                "INSERT INTO photos (concept_id, sha256, file, original_name, width, height,"
                " added_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (concept_id, sha256, rel_file, original_name, width, height, now_iso()),
            )
            photo = _photo(conn.execute("SELECT * FROM photos WHERE id = ?",
                                        (cur.lastrowid,)).fetchone())
        self._note_added("photos", photo.id)
        return photo

    def photos(self, concept_id: int | None = None) -> list[Photo]:
        if concept_id is None:
            rows = self._rows("SELECT * FROM photos ORDER BY id")
        else:
            rows = self._rows("SELECT * FROM photos WHERE concept_id = ? ORDER BY id",
                              (concept_id,))
        return [_photo(r) for r in rows]

    def photo(self, photo_id: int) -> Photo:
        return _photo(self._one("photos", photo_id, "photo"))

    def delete_photo(self, photo_id: int) -> None:
        """Delete a photo record and its masks; the file stays (content-addressed)."""
        with self._tx() as conn:
            self._one("photos", photo_id, "photo")
            conn.execute("DELETE FROM photos WHERE id = ?", (photo_id,))

    def add_mask(self, photo_id: int, concept_id: int, file: str, method: str,
                 cutout_file: str | None = None, quality: float | None = None, *,
                 profile: str = "", test_model: bool = False, flag: str = "") -> Mask:
        """Record a mask; `profile`/`test_model` say what made it, `flag` why it is likely
        wrong ('' when it looks plausible)."""
        check_relative(file, "Mask file")
        if not isinstance(profile, str) or not isinstance(flag, str):
            raise InputError("Mask profile and flag must be text")
        if cutout_file is not None:
            check_relative(cutout_file, "Mask cutout_file")
        if not isinstance(method, str):
            raise InputError(f"Mask method must be text, got {method!r}")
        if quality is not None:
            if (isinstance(quality, bool) or not isinstance(quality, (int, float))
                    or not math.isfinite(quality)):
                raise InputError(f"Mask quality must be a finite number, got {quality!r}")
            quality = float(quality)
        with self._tx() as conn:
            self._one("photos", photo_id, "photo")
            self._one("concepts", concept_id, "concept")
            cur = conn.execute(
                "INSERT INTO masks (photo_id, concept_id, file, cutout_file, method, quality,"
                " created_at, profile, test_model, flag) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (photo_id, concept_id, file, cutout_file, method, quality, now_iso(),
                 profile or None, 1 if test_model else 0, flag),
            )
            mask = _mask(conn.execute("SELECT * FROM masks WHERE id = ?",
                                      (cur.lastrowid,)).fetchone())
        self._note_added("masks", mask.id)
        return mask

    def current_masks(self, concept_id: int) -> dict[int, Mask]:
        """The current mask of each photo of a concept, by photo id: the newest one. Every
        mask ever made is kept (an edit adds a row), so "current" means the latest row."""
        rows = self._rows(
            "SELECT * FROM masks WHERE id IN (SELECT MAX(id) FROM masks WHERE concept_id = ?"
            " GROUP BY photo_id) ORDER BY photo_id", (concept_id,))
        return {r["photo_id"]: _mask(r) for r in rows}

    def masks(self, photo_id: int | None = None, concept_id: int | None = None) -> list[Mask]:
        clauses, params = [], []
        if photo_id is not None:
            clauses.append("photo_id = ?")
            params.append(photo_id)
        if concept_id is not None:
            clauses.append("concept_id = ?")
            params.append(concept_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return [_mask(r) for r in self._rows(f"SELECT * FROM masks{where} ORDER BY id",
                                             tuple(params))]
