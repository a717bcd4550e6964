"""The catalogue schema, as an ordered list of forward migrations.

`PRAGMA user_version` is the schema version: a catalogue at version N has had migrations
1..N applied. A new catalogue is built by running every migration from 0, so a fresh
catalogue and an upgraded one go through the same statements.

A released migration is never edited: change the schema by appending a new one.
"""

from __future__ import annotations

import sqlite3

# Migration 1: the first release.
_V1: tuple[str, ...] = (
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT
    )""",
    """CREATE TABLE concepts (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        token TEXT NOT NULL UNIQUE,
        class_word TEXT NOT NULL,
        created_at TEXT
    )""",
    """CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        concept_id INTEGER NOT NULL REFERENCES concepts(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL,
        file TEXT NOT NULL,
        original_name TEXT,
        width INTEGER,
        height INTEGER,
        added_at TEXT,
        UNIQUE (concept_id, sha256)
    )""",
    """CREATE TABLE masks (
        id INTEGER PRIMARY KEY,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        concept_id INTEGER NOT NULL REFERENCES concepts(id) ON DELETE CASCADE,
        file TEXT NOT NULL,
        cutout_file TEXT,
        method TEXT,
        quality REAL,
        created_at TEXT
    )""",
    # Child columns of foreign keys are indexed so a cascading delete does not scan the table.
    "CREATE INDEX masks_photo ON masks(photo_id)",
    "CREATE INDEX masks_concept ON masks(concept_id)",
    """CREATE TABLE layouts (
        id INTEGER PRIMARY KEY,
        scene TEXT,
        caption TEXT,
        objects_json TEXT NOT NULL DEFAULT '[]',
        source TEXT,
        seed INTEGER,
        created_at TEXT
    )""",
    """CREATE TABLE dataset_items (
        id INTEGER PRIMARY KEY,
        layout_id INTEGER REFERENCES layouts(id) ON DELETE SET NULL,
        image_file TEXT NOT NULL,
        caption TEXT,
        masks_json TEXT NOT NULL DEFAULT '{}',
        created_at TEXT
    )""",
    "CREATE INDEX dataset_items_layout ON dataset_items(layout_id)",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        config_json TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL,
        created_at TEXT,
        finished_at TEXT,
        output_dir TEXT
    )""",
)

# Migration 2: review and scores of dataset items, run snapshots, generations and their scores.
_V2: tuple[str, ...] = (
    "ALTER TABLE dataset_items ADD COLUMN token_caption TEXT",
    "ALTER TABLE dataset_items ADD COLUMN scores_json TEXT DEFAULT '{}'",
    """ALTER TABLE dataset_items ADD COLUMN review_state TEXT NOT NULL DEFAULT 'auto-kept'
        CHECK (review_state IN ('auto-kept', 'auto-rejected', 'accepted', 'rejected'))""",
    "ALTER TABLE dataset_items ADD COLUMN reasons TEXT DEFAULT ''",
    "CREATE INDEX dataset_items_review ON dataset_items(review_state)",
    "ALTER TABLE runs ADD COLUMN dataset_snapshot TEXT",
    "ALTER TABLE runs ADD COLUMN metrics_file TEXT",
    """CREATE TABLE generations (
        id INTEGER PRIMARY KEY,
        run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
        prompt TEXT NOT NULL,
        seed INTEGER,
        settings_json TEXT NOT NULL DEFAULT '{}',
        image_file TEXT,
        created_at TEXT
    )""",
    "CREATE INDEX generations_run ON generations(run_id)",
    """CREATE TABLE scores (
        id INTEGER PRIMARY KEY,
        generation_id INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
        metric TEXT NOT NULL CHECK (metric IN ('cp-clip', 'ti-clip')),
        concept_id INTEGER REFERENCES concepts(id) ON DELETE CASCADE,
        value REAL NOT NULL
    )""",
    "CREATE INDEX scores_generation ON scores(generation_id)",
)

# Migration 3: dataset items remember their place in a build (the resume key: one row per
# index, enforced by the index) and how they were made (seed, settings, cut-outs, boxes).
_V3: tuple[str, ...] = (
    "ALTER TABLE dataset_items ADD COLUMN build_index INTEGER",
    "ALTER TABLE dataset_items ADD COLUMN provenance_json TEXT NOT NULL DEFAULT '{}'",
    "CREATE UNIQUE INDEX dataset_items_build_index ON dataset_items(build_index)",
)

# Migration 4: the job journal. Each job that works on the project is recorded when it starts
# and when it ends, so a job cut short (the app quit, the machine went down) is found again
# on the next open and can be resumed.
_V4: tuple[str, ...] = (
    """CREATE TABLE job_journal (
        id INTEGER PRIMARY KEY,
        job_id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        title TEXT,
        params_json TEXT NOT NULL DEFAULT '{}',
        resume_json TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL CHECK (state IN ('running', 'finished', 'failed', 'cancelled',
            'interrupted', 'resumed', 'dismissed')),
        owner_pid INTEGER,
        owner_started REAL,
        started_at TEXT,
        ended_at TEXT,
        reason TEXT
    )""",
    "CREATE INDEX job_journal_state ON job_journal(state)",
)

# Migration 5: the gallery and the scores. A generation can be a favourite, carry a rating
# (1..5, NULL unrated) and sit in the trash (deleted_at set, its image moved under trash/ until
# the trash is emptied: engine/project/trash.py). A score row names how it was made: the
# detector's box ([x, y, w, h] in 0..1 of the image) and confidence for a concept's CP-CLIP,
# the models that scored it, whether those were test models, and details (threshold, ...);
# the metrics grow the Custom Diffusion pair ('cd-text', 'cd-image'; engine/score/metrics.py).
# SQLite cannot change a CHECK constraint in place, so the scores table is rebuilt; rows from
# before keep their values, with no model named (it was not recorded then).
_V5: tuple[str, ...] = (
    """ALTER TABLE generations ADD COLUMN favourite INTEGER NOT NULL DEFAULT 0
        CHECK (favourite IN (0, 1))""",
    "ALTER TABLE generations ADD COLUMN rating INTEGER CHECK (rating BETWEEN 1 AND 5)",
    "ALTER TABLE generations ADD COLUMN deleted_at TEXT",
    "CREATE INDEX generations_deleted ON generations(deleted_at)",
    """CREATE TABLE scores_v5 (
        id INTEGER PRIMARY KEY,
        generation_id INTEGER NOT NULL REFERENCES generations(id) ON DELETE CASCADE,
        metric TEXT NOT NULL CHECK (metric IN ('cp-clip', 'ti-clip', 'cd-text', 'cd-image')),
        concept_id INTEGER REFERENCES concepts(id) ON DELETE CASCADE,
        value REAL NOT NULL,
        box_json TEXT,
        confidence REAL,
        model TEXT,
        test_model INTEGER NOT NULL DEFAULT 0 CHECK (test_model IN (0, 1)),
        details_json TEXT NOT NULL DEFAULT '{}',
        scored_at TEXT
    )""",
    """INSERT INTO scores_v5 (id, generation_id, metric, concept_id, value)
        SELECT id, generation_id, metric, concept_id, value FROM scores""",
    "DROP TABLE scores",
    "ALTER TABLE scores_v5 RENAME TO scores",
    "CREATE INDEX scores_generation ON scores(generation_id)",
    "CREATE INDEX scores_metric ON scores(metric, concept_id)",
)

# Migration 6: a mask names the profile whose segmenter made it and whether that segmenter was
# a test model (random weights: the mask is noise, and a real profile's work makes it again),
# and carries a plausibility flag: why the mask is likely wrong ('' when it looks plausible),
# shown until the user looks. Masks from before say nothing (NULL profile): they count as real.
_V6: tuple[str, ...] = (
    "ALTER TABLE masks ADD COLUMN profile TEXT",
    """ALTER TABLE masks ADD COLUMN test_model INTEGER NOT NULL DEFAULT 0
        CHECK (test_model IN (0, 1))""",
    "ALTER TABLE masks ADD COLUMN flag TEXT NOT NULL DEFAULT ''",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5, _V6)
CURRENT_VERSION = len(MIGRATIONS)

# Every table of the current schema, in the order `mycanvas info` lists them.
TABLES: tuple[str, ...] = (
    "meta",
    "concepts",
    "photos",
    "masks",
    "layouts",
    "dataset_items",
    "runs",
    "generations",
    "scores",
    "job_journal",
)

# Columns that name files of the project, for the repair's file check: (table, column, kind);
# kind "path" is one relative path, "json-map" a JSON object whose values are paths. A new
# column that names a file is added here.
FILE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("photos", "file", "path"),
    ("masks", "file", "path"),
    ("masks", "cutout_file", "path"),
    ("dataset_items", "image_file", "path"),
    ("dataset_items", "masks_json", "json-map"),
    ("generations", "image_file", "path"),
)


def apply_migrations(
    conn: sqlite3.Connection, from_version: int, to_version: int = CURRENT_VERSION
) -> None:
    """Run migrations from_version+1 .. to_version, bumping user_version after each.

    The caller owns the transaction: SQLite DDL is transactional, so a failure part-way
    rolls every migration back together with the version bumps.
    """
    if not 0 <= from_version <= to_version <= CURRENT_VERSION:
        raise ValueError(f"cannot migrate from schema {from_version} to {to_version}")
    for version in range(from_version + 1, to_version + 1):
        for statement in MIGRATIONS[version - 1]:
            conn.execute(statement)
        # PRAGMA takes no bound parameters; `version` is an int from range().
        conn.execute(f"PRAGMA user_version = {int(version)}")
