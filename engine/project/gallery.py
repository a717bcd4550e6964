"""The gallery's data: generated pictures found by run, concept, prompt text, score range,
date, favourite, rating and guidance; favourites and ratings; each picture's scores.

Mixed into Project (like stage_tables), which supplies the connection plumbing. The trash
(delete, restore, empty) is engine/project/trash.py; export with recipes, gallery_export.py.

Two readings of a generation's data, one definition each:

* its **concepts** are the project's concepts whose token its prompt names, in the order the
  prompt first names them (the score job reads the prompt the same way);
* it is **guided** when its recipe (Generation.settings) holds a layout: a non-null "layout"
  or "layout_id" key, as the generate stage writes it for layout-guided pictures.

Image-level scores are the rows with no concept: cp-clip and cd-image there are the means
over the picture's concepts (engine/score/metrics.py defines every metric).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.project.gallery_query import SELECT_PICTURES, GalleryQuery
from engine.project.records import Concept, Generation, Score, check_rating, to_json
from engine.project.stage_tables import generation_from_row, score_from_row


def score_time() -> str:
    """A UTC timestamp for scored_at, to the microsecond: a rescore that starts in the same
    second as the last score still tells them apart."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class ConceptScore:
    """A concept the picture's prompt names, and how it scored (None: not scored yet)."""

    concept_id: int
    token: str
    name: str
    class_word: str
    cp_clip: float | None = None
    box: tuple[float, float, float, float] | None = None  # x, y, w, h in 0..1
    confidence: float | None = None
    cd_image: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def detected(self) -> bool:
        return self.box is not None

    def to_dict(self) -> dict[str, Any]:
        return {"concept_id": self.concept_id, "token": self.token, "name": self.name,
                "class_word": self.class_word, "cp_clip": self.cp_clip,
                "box": list(self.box) if self.box else None, "confidence": self.confidence,
                "cd_image": self.cd_image, "details": self.details}


@dataclass(frozen=True)
class GalleryImage:
    """One picture as the gallery shows it: its record, where its image is, its scores."""

    generation: Generation
    path: Path | None  # the image file (under trash/ while trashed), None if it has none
    guided: bool
    cp_clip: float | None
    ti_clip: float | None
    cd_text: float | None
    cd_image: float | None
    concepts: tuple[ConceptScore, ...]
    model: str  # the models that scored it ("" if not scored)
    test_model: bool  # scored by the tiny test models: the numbers mean nothing
    scored_at: str | None

    @property
    def id(self) -> int:
        return int(self.generation.id or 0)

    @property
    def scored(self) -> bool:
        return self.ti_clip is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (`mycanvas gallery --json`, exported recipes)."""
        g = self.generation
        return {
            "id": g.id, "run_id": g.run_id, "prompt": g.prompt, "seed": g.seed,
            "settings": g.settings, "image_file": g.image_file,
            "path": str(self.path) if self.path else None, "created_at": g.created_at,
            "favourite": g.favourite, "rating": g.rating, "deleted_at": g.deleted_at,
            "guided": self.guided,
            "scores": {"cp_clip": self.cp_clip, "ti_clip": self.ti_clip,
                       "cd_text": self.cd_text, "cd_image": self.cd_image,
                       "scored_at": self.scored_at, "model": self.model,
                       "test_model": self.test_model,
                       "concepts": [c.to_dict() for c in self.concepts]},
        }


def prompt_concepts(prompt: str, concepts: Iterable[Concept]) -> list[Concept]:
    """The concepts whose token `prompt` names, in the order it first names them."""
    found = [(prompt.find(c.token), c) for c in concepts if c.token and c.token in prompt]
    return [c for _pos, c in sorted(found, key=lambda pair: (pair[0], pair[1].id))]


def generation_ids(value: int | Iterable[int], what: str = "generation") -> tuple[int, ...]:
    """One id or several, checked to be whole numbers; duplicates dropped, order kept."""
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    out: list[int] = []
    for item in items:  # type: ignore[union-attr]
        if isinstance(item, bool) or not isinstance(item, int):
            raise InputError(f"A {what} id must be a whole number, got {item!r}")
        if item not in out:
            out.append(item)
    return tuple(out)


_CHUNK = 500  # ids per IN (...) list, well under SQLite's variable limit


def chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]


class GalleryRecords:
    """Gallery queries, favourites, ratings and score rows. Needs Project's plumbing."""

    if TYPE_CHECKING:
        root: Path

        def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

        def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]: ...

        def _one(self, table: str, record_id: Any, what: str) -> sqlite3.Row: ...

        def concepts(self) -> list[Concept]: ...

        def abspath(self, rel: str) -> Path: ...

    # ------------------------------------------------------------------ queries

    def gallery(self, query: GalleryQuery | None = None, **filters: Any) -> list[GalleryImage]:
        """The pictures `query` (or GalleryQuery(**filters)) selects, in its order."""
        q = query if query is not None else GalleryQuery(**filters)
        if q.concept_id is not None:
            self._one("concepts", q.concept_id, "concept")
        if q.run_id is not None:
            self._one("runs", q.run_id, "run")
        return self._gallery_images(self._rows(*q.sql()))

    def gallery_count(self, query: GalleryQuery | None = None, **filters: Any) -> int:
        """How many pictures the query selects, ignoring its limit and offset."""
        q = query if query is not None else GalleryQuery(**filters)
        return int(self._rows(*q.count_sql())[0][0])

    def gallery_state(self) -> tuple[Any, ...]:
        """What a view of the gallery shows, in a form compared with ==: each picture's marks
        (favourite, rating, trash) and how many scores there are and when the newest was made,
        so adding, deleting, restoring, marking and (re)scoring pictures all change it."""
        marks = tuple(tuple(r) for r in self._rows(
            "SELECT id, favourite, rating, deleted_at FROM generations ORDER BY id"))
        scores = tuple(self._rows("SELECT COUNT(*), MAX(scored_at) FROM scores")[0])
        return marks, scores

    def gallery_image(self, generation_id: int) -> GalleryImage:
        """One picture, in the trash or not; InputError if there is none."""
        self._one("generations", generation_id, "generation")
        rows = self._rows(SELECT_PICTURES + " WHERE id = ?", (generation_id,))
        return self._gallery_images(rows)[0]

    def _gallery_images(self, rows: list[sqlite3.Row]) -> list[GalleryImage]:
        if not rows:
            return []
        concepts = self.concepts()
        by_id = {c.id: c for c in concepts}
        per_concept: dict[int, dict[int, dict[str, Score]]] = {}
        ids = [int(r["id"]) for r in rows]
        for part in chunks(ids):
            marks = ",".join("?" * len(part))
            for srow in self._rows(f"SELECT * FROM scores WHERE generation_id IN ({marks})"
                                   " AND concept_id IS NOT NULL", tuple(part)):
                score = score_from_row(srow)
                assert score.concept_id is not None
                per_concept.setdefault(score.generation_id, {}).setdefault(
                    score.concept_id, {})[score.metric] = score
        out = []
        for row in rows:
            gen = generation_from_row(row)
            scored = per_concept.get(int(row["id"]), {})
            named = prompt_concepts(gen.prompt, concepts)
            # A concept scored once but no longer named (prompt edited elsewhere) still shows.
            named += [by_id[cid] for cid in sorted(scored)
                      if cid in by_id and by_id[cid] not in named]
            items = []
            for concept in named:
                metrics = scored.get(concept.id, {})
                cp, cd = metrics.get("cp-clip"), metrics.get("cd-image")
                items.append(ConceptScore(
                    concept.id, concept.token, concept.name, concept.class_word,
                    cp_clip=cp.value if cp else None, box=cp.box if cp else None,
                    confidence=cp.confidence if cp else None,
                    cd_image=cd.value if cd else None, details=cp.details if cp else {}))
            path = self.abspath(gen.image_file) if gen.image_file else None
            out.append(GalleryImage(
                generation=gen, path=path, guided=bool(row["guided"]),
                cp_clip=row["cp_clip"], ti_clip=row["ti_clip"], cd_text=row["cd_text"],
                cd_image=row["cd_image"], concepts=tuple(items), model=row["model"] or "",
                test_model=bool(row["test_model"]), scored_at=row["scored_at"]))
        return out

    def generations_to_score(self, run_id: int | None = None,
                             ids: Iterable[int] | None = None,
                             rescore_before: str | None = None) -> list[Generation]:
        """Live pictures with an image that have no scores yet (or, with `rescore_before`,
        whose scores are older than that timestamp), oldest first; limited to a run and/or
        to the given ids."""
        clauses = ["deleted_at IS NULL", "image_file IS NOT NULL"]
        params: list[Any] = []
        if rescore_before is None:
            clauses.append("ti_clip IS NULL")
        else:
            clauses.append("(ti_clip IS NULL OR scored_at < ?)")
            params.append(rescore_before)
        if run_id is not None:
            self._one("runs", run_id, "run")
            clauses.append("run_id = ?")
            params.append(run_id)
        wanted = None if ids is None else generation_ids(ids)
        if wanted is not None:
            for gid in wanted:
                self._one("generations", gid, "generation")
        rows = self._rows(f"{SELECT_PICTURES} WHERE {' AND '.join(clauses)} ORDER BY id",
                          tuple(params))
        out = [generation_from_row(r) for r in rows]
        return out if wanted is None else [g for g in out if g.id in wanted]

    # ------------------------------------------------------------------ marks

    def set_favourite(self, ids: int | Iterable[int], favourite: bool = True) -> int:
        """Mark (or unmark) pictures as favourites; returns how many exist and were set."""
        if not isinstance(favourite, bool):
            raise InputError(f"favourite must be true or false, got {favourite!r}")
        return self._update_generations(ids, "favourite = ?", (1 if favourite else 0,))

    def set_rating(self, ids: int | Iterable[int], rating: int | None) -> int:
        """Rate pictures 1..5 stars, or clear the rating with None."""
        check_rating(rating)
        return self._update_generations(ids, "rating = ?", (rating,))

    def _update_generations(self, ids: int | Iterable[int], assignment: str,
                            values: tuple[Any, ...]) -> int:
        wanted = generation_ids(ids)
        with self._tx() as conn:
            for gid in wanted:  # all or nothing: an unknown id changes nothing
                self._one("generations", gid, "generation")
            for part in chunks(wanted):
                marks = ",".join("?" * len(part))
                conn.execute(f"UPDATE generations SET {assignment} WHERE id IN ({marks})",
                             (*values, *part))
        return len(wanted)

    # ------------------------------------------------------------------ scores

    def replace_scores(self, generation_id: int, scores: Sequence[Score]) -> list[Score]:
        """Make `scores` the picture's scores, in one transaction: its old rows go, so a
        killed rescore leaves either the old set or the new one, never a mix."""
        for score in scores:
            if not isinstance(score, Score):
                raise InputError(f"replace_scores takes Score records, got {score!r}")
            if score.generation_id != generation_id:
                raise InputError(f"A score of generation {score.generation_id} cannot be "
                                 f"stored for generation {generation_id}")
        with self._tx() as conn:
            self._one("generations", generation_id, "generation")
            for cid in sorted({s.concept_id for s in scores if s.concept_id is not None}):
                if not conn.execute("SELECT 1 FROM concepts WHERE id = ?", (cid,)).fetchone():
                    raise InputError(f"Score refers to concept {cid}, which does not exist")
            conn.execute("DELETE FROM scores WHERE generation_id = ?", (generation_id,))
            stamp = score_time()
            for s in scores:
                conn.execute(
                    "INSERT INTO scores (generation_id, metric, concept_id, value, box_json,"
                    " confidence, model, test_model, details_json, scored_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (generation_id, s.metric, s.concept_id, s.value,
                     json.dumps(list(s.box)) if s.box else None, s.confidence, s.model,
                     1 if s.test_model else 0, to_json(s.details, "Score.details"),
                     s.scored_at or stamp))
            rows = conn.execute("SELECT * FROM scores WHERE generation_id = ? ORDER BY id",
                                (generation_id,)).fetchall()
        return [score_from_row(r) for r in rows]
