"""Catalogue tables written by the pipeline stages: layouts, dataset items, runs,
generations and their scores. Mixed into Project, which supplies the connection plumbing.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.project.files import check_relative
from engine.project.records import (
    REVIEW_STATES,
    RUN_STATUSES,
    DatasetItem,
    Generation,
    Layout,
    Run,
    Score,
    check_choice,
    now_iso,
    to_json,
)

_TERMINAL_STATUSES = frozenset({"finished", "failed", "cancelled", "interrupted"})


MAX_STORED_PROMPT = 10_000
MAX_STORED_SETTINGS = 256_000


def _json_or(text: str | None, default: Any) -> Any:
    # Columns added by a migration hold NULL for old rows.
    return json.loads(text) if text else default


def _layout(row: sqlite3.Row) -> Layout:
    return Layout(id=row["id"], scene=row["scene"] or "", caption=row["caption"] or "",
                  objects=Layout.objects_from_json(row["objects_json"]),
                  source=row["source"] or "", seed=row["seed"],
                  created_at=row["created_at"] or "")


def _item(row: sqlite3.Row) -> DatasetItem:
    return DatasetItem(id=row["id"], image_file=row["image_file"], caption=row["caption"] or "",
                       token_caption=row["token_caption"], layout_id=row["layout_id"],
                       masks=_json_or(row["masks_json"], {}),
                       scores=_json_or(row["scores_json"], {}),
                       review_state=row["review_state"], reasons=row["reasons"] or "",
                       build_index=row["build_index"],
                       provenance=_json_or(row["provenance_json"], {}),
                       created_at=row["created_at"] or "")


def _run(row: sqlite3.Row) -> Run:
    return Run(id=row["id"], kind=row["kind"], config=_json_or(row["config_json"], {}),
               status=row["status"], output_dir=row["output_dir"],
               dataset_snapshot=row["dataset_snapshot"], metrics_file=row["metrics_file"],
               created_at=row["created_at"] or "", finished_at=row["finished_at"])


def _settings(text: str | None) -> dict[str, Any]:
    """A generation's recipe; one whose JSON does not parse (a damaged catalogue before its
    repair) reads as empty, so one bad row cannot stop every listing of the gallery."""
    try:
        value = _json_or(text, {})
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def generation_from_row(row: sqlite3.Row) -> Generation:
    return Generation(id=row["id"], run_id=row["run_id"], prompt=row["prompt"],
                      seed=row["seed"], settings=_settings(row["settings_json"]),
                      image_file=row["image_file"], created_at=row["created_at"] or "",
                      favourite=bool(row["favourite"]), rating=row["rating"],
                      deleted_at=row["deleted_at"])


def score_from_row(row: sqlite3.Row) -> Score:
    box = _json_or(row["box_json"], None)
    return Score(id=row["id"], generation_id=row["generation_id"], metric=row["metric"],
                 value=row["value"], concept_id=row["concept_id"],
                 box=tuple(box) if box else None, confidence=row["confidence"],
                 model=row["model"] or "", test_model=bool(row["test_model"]),
                 details=_json_or(row["details_json"], {}), scored_at=row["scored_at"] or "")



def _rel(rel: str | None, field_name: str) -> None:
    if rel is not None:
        check_relative(rel, field_name)


def _record(value: Any, cls: type, what: str) -> None:
    if not isinstance(value, cls):
        raise InputError(f"{what} must be a {cls.__name__}, got {type(value).__name__}")


class PipelineRecords:
    """Layouts, dataset items, runs, generations, scores. Needs Project's plumbing."""

    if TYPE_CHECKING:

        def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

        def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]: ...

        def _one(self, table: str, record_id: Any, what: str) -> sqlite3.Row: ...

        def _note_added(self, table: str, row_id: int | None) -> None: ...

    def _require_concepts(self, conn: sqlite3.Connection, ids: set[int], what: str) -> None:
        for concept_id in sorted(ids):
            if not conn.execute("SELECT 1 FROM concepts WHERE id = ?", (concept_id,)).fetchone():
                raise InputError(f"{what} refers to concept {concept_id}, which does not exist")

    # ------------------------------------------------------------------ layouts

    def add_layout(self, layout: Layout) -> Layout:
        _record(layout, Layout, "add_layout's argument")
        with self._tx() as conn:
            self._require_concepts(conn, {o.concept_id for o in layout.objects}, "Layout")
            cur = conn.execute(
                "INSERT INTO layouts (scene, caption, objects_json, source, seed, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (layout.scene, layout.caption, layout.objects_json(), layout.source,
                 layout.seed, now_iso()),
            )
            return self.layout(int(cur.lastrowid or 0))

    def update_layout(self, layout: Layout) -> Layout:
        """Replace the stored layout with the same id; its created_at is kept."""
        _record(layout, Layout, "update_layout's argument")
        if layout.id is None:
            raise InputError("Layout.id must be set to update a layout")
        with self._tx() as conn:
            self._one("layouts", layout.id, "layout")
            self._require_concepts(conn, {o.concept_id for o in layout.objects}, "Layout")
            conn.execute(
                "UPDATE layouts SET scene = ?, caption = ?, objects_json = ?, source = ?,"
                " seed = ? WHERE id = ?",
                (layout.scene, layout.caption, layout.objects_json(), layout.source,
                 layout.seed, layout.id),
            )
            return self.layout(layout.id)

    def delete_layout(self, layout_id: int) -> None:
        """Delete a layout; dataset items made from it keep existing, unlinked."""
        with self._tx() as conn:
            self._one("layouts", layout_id, "layout")
            conn.execute("DELETE FROM layouts WHERE id = ?", (layout_id,))

    def layouts(self) -> list[Layout]:
        return [_layout(r) for r in self._rows("SELECT * FROM layouts ORDER BY id")]

    def layout(self, layout_id: int) -> Layout:
        return _layout(self._one("layouts", layout_id, "layout"))

    # ------------------------------------------------------------------ dataset items

    def add_dataset_item(self, item: DatasetItem) -> DatasetItem:
        _record(item, DatasetItem, "add_dataset_item's argument")
        check_relative(item.image_file, "DatasetItem.image_file")
        for concept_id, mask_file in item.masks.items():
            check_relative(mask_file, f"DatasetItem.masks[{concept_id}]")
        with self._tx() as conn:
            if item.layout_id is not None:
                self._one("layouts", item.layout_id, "layout")
            self._require_concepts(conn, set(item.masks), "DatasetItem.masks")
            if item.build_index is not None and conn.execute(
                    "SELECT 1 FROM dataset_items WHERE build_index = ?",
                    (item.build_index,)).fetchone():
                raise InputError(f"Dataset item #{item.build_index} already exists")
            cur = conn.execute(
                "INSERT INTO dataset_items (layout_id, image_file, caption, token_caption,"
                " masks_json, scores_json, review_state, reasons, build_index, provenance_json,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item.layout_id, item.image_file, item.caption, item.token_caption,
                 to_json({str(k): v for k, v in item.masks.items()}, "DatasetItem.masks"),
                 to_json(item.scores, "DatasetItem.scores"), item.review_state, item.reasons,
                 item.build_index, to_json(item.provenance, "DatasetItem.provenance"),
                 now_iso()),
            )
            return self.dataset_item(int(cur.lastrowid or 0))

    def dataset_items(self, review_state: str | None = None) -> list[DatasetItem]:
        if review_state is None:
            rows = self._rows("SELECT * FROM dataset_items ORDER BY id")
        else:
            check_choice(review_state, REVIEW_STATES, "review_state")
            rows = self._rows("SELECT * FROM dataset_items WHERE review_state = ? ORDER BY id",
                              (review_state,))
        return [_item(r) for r in rows]

    def dataset_item(self, item_id: int) -> DatasetItem:
        return _item(self._one("dataset_items", item_id, "dataset item"))

    def set_review_state(self, item_id: int, state: str,
                         reasons: str | None = None) -> DatasetItem:
        """Set the review state (and, if given, the reasons shown to the user)."""
        check_choice(state, REVIEW_STATES, "review_state")
        if reasons is not None and not isinstance(reasons, str):
            raise InputError(f"reasons must be text, got {reasons!r}")
        with self._tx() as conn:
            self._one("dataset_items", item_id, "dataset item")
            conn.execute(
                "UPDATE dataset_items SET review_state = ?, reasons = COALESCE(?, reasons)"
                " WHERE id = ?", (state, reasons, item_id))
            return self.dataset_item(item_id)

    def release_build_indices(self, item_ids: Iterable[int]) -> int:
        """Free the build numbers of these items (they stay, outside any build), so a build
        makes those numbers again: how a real profile replaces what test models built."""
        ids = [int(i) for i in item_ids]
        with self._tx() as conn:
            for i in ids:
                conn.execute("UPDATE dataset_items SET build_index = NULL WHERE id = ?", (i,))
        return len(ids)

    # ------------------------------------------------------------------ runs

    def add_run(self, run: Run) -> Run:
        _record(run, Run, "add_run's argument")
        check_choice(run.status, RUN_STATUSES, "Run.status")
        _rel(run.output_dir, "Run.output_dir")
        _rel(run.metrics_file, "Run.metrics_file")
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO runs (kind, config_json, status, created_at, finished_at,"
                " output_dir, dataset_snapshot, metrics_file) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run.kind, to_json(run.config, "Run.config"), run.status, now_iso(),
                 run.finished_at, run.output_dir, run.dataset_snapshot, run.metrics_file),
            )
            added = self.run(int(cur.lastrowid or 0))
        self._note_added("runs", added.id)
        return added

    def update_run(self, run_id: int, *, status: str | None = None,
                   finished_at: str | None = None, output_dir: str | None = None,
                   dataset_snapshot: str | None = None, metrics_file: str | None = None,
                   config: dict[str, Any] | None = None) -> Run:
        """Change the given fields (None leaves a field as it is). A run reaching a final
        status without finished_at gets the current time."""
        changes: dict[str, Any] = {}
        if status is not None:
            check_choice(status, RUN_STATUSES, "Run.status")
            changes["status"] = status
            if status in _TERMINAL_STATUSES and finished_at is None:
                finished_at = now_iso()
        _rel(output_dir, "Run.output_dir")
        _rel(metrics_file, "Run.metrics_file")
        for column, value in (("finished_at", finished_at), ("output_dir", output_dir),
                              ("dataset_snapshot", dataset_snapshot),
                              ("metrics_file", metrics_file)):
            if value is not None:
                changes[column] = value
        if config is not None:
            changes["config_json"] = to_json(config, "Run.config")
        with self._tx() as conn:
            self._one("runs", run_id, "run")
            if changes:
                # Column names come from the literal list above, never from the caller.
                assignments = ", ".join(f"{column} = ?" for column in changes)
                conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?",
                             (*changes.values(), run_id))
            return self.run(run_id)

    def runs(self, kind: str | None = None) -> list[Run]:
        if kind is None:
            rows = self._rows("SELECT * FROM runs ORDER BY id")
        else:
            rows = self._rows("SELECT * FROM runs WHERE kind = ? ORDER BY id", (kind,))
        return [_run(r) for r in rows]

    def run(self, run_id: int) -> Run:
        return _run(self._one("runs", run_id, "run"))

    def delete_run(self, run_id: int) -> None:
        """Forget a run: its row goes; its pictures stay, no longer linked to it (run_id
        NULL). Its folder is the caller's to remove (engine.train.delete_run)."""
        with self._tx() as conn:
            self._one("runs", run_id, "run")
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    # ------------------------------------------------------------------ generations, scores

    def add_generation(self, generation: Generation) -> Generation:
        _record(generation, Generation, "add_generation's argument")
        _rel(generation.image_file, "Generation.image_file")
        settings = to_json(generation.settings, "Generation.settings")
        # A recipe's own limits are far below these; they keep a hostile one out of the rows.
        if len(generation.prompt) > MAX_STORED_PROMPT or len(settings) > MAX_STORED_SETTINGS:
            raise InputError(f"Generation: the prompt ({len(generation.prompt):,} characters) "
                             f"or the settings ({len(settings):,}) are too long to store")
        with self._tx() as conn:
            if generation.run_id is not None:
                self._one("runs", generation.run_id, "run")
            cur = conn.execute(
                "INSERT INTO generations (run_id, prompt, seed, settings_json, image_file,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (generation.run_id, generation.prompt, generation.seed, settings,
                 generation.image_file,
                 now_iso()),
            )
            return self.generation(int(cur.lastrowid or 0))

    def generations(self, run_id: int | None = None) -> list[Generation]:
        if run_id is None:
            rows = self._rows("SELECT * FROM generations ORDER BY id")
        else:
            rows = self._rows("SELECT * FROM generations WHERE run_id = ? ORDER BY id",
                              (run_id,))
        return [generation_from_row(r) for r in rows]

    def generation(self, generation_id: int) -> Generation:
        return generation_from_row(self._one("generations", generation_id, "generation"))

    def add_score(self, generation_id: int, metric: str, value: float,
                  concept_id: int | None = None) -> Score:
        """Add one score row (the score job writes an image's rows together with
        `replace_scores`, which also records how they were made)."""
        score = Score(generation_id=generation_id, metric=metric, value=value,
                      concept_id=concept_id)
        with self._tx() as conn:
            self._one("generations", generation_id, "generation")
            if concept_id is not None:
                self._require_concepts(conn, {concept_id}, "Score")
            cur = conn.execute(
                "INSERT INTO scores (generation_id, metric, concept_id, value)"
                " VALUES (?, ?, ?, ?)", (generation_id, metric, concept_id, score.value))
            row = conn.execute("SELECT * FROM scores WHERE id = ?", (cur.lastrowid,)).fetchone()
            return score_from_row(row)

    def scores(self, generation_id: int | None = None) -> list[Score]:
        if generation_id is None:
            rows = self._rows("SELECT * FROM scores ORDER BY id")
        else:
            rows = self._rows("SELECT * FROM scores WHERE generation_id = ? ORDER BY id",
                              (generation_id,))
        return [score_from_row(r) for r in rows]
