"""A concept renamed (name and token) or deleted with everything made from it.

What a concept delete takes with it, counted first (`concept_footprint`) so the window's
confirmation and `mycanvas concept delete` say what goes:

* its photos, their masks and cut-outs, and its scores (the catalogue's cascades);
* the dataset items whose masks name it, and the layouts that place it;
* the files only those rows named (removed after the commit: a file another row still names,
  another concept's copy of the same photo, stays).

What stays: the runs trained on it (each keeps its own record of the concept: name, token,
class word, weights) and the gallery's pictures (their prompts keep naming the old token).

A token rename changes what new prompts, captions and runs call the concept; the dataset's
token captions are rewritten with it. Runs already trained keep the token they were trained
on (their export says it): prompts for those runs use the old token.

Both are refused while a job runs on the project's data that may use the concept (a job
whose parameters name another concept is not in the way); both are one transaction.
Mixed into Project, which supplies the connection plumbing.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ProjectError
from engine.project.job_journal import JournalEntry
from engine.project.records import Concept

# Jobs that never read the project's concepts.
_CONCEPT_FREE_JOBS = frozenset({"device-info", "ensure-models", "repair-project"})


class ConceptBusyError(ProjectError):
    """A job runs on the data that uses the concept: nothing was changed."""


@dataclass(frozen=True)
class ConceptFootprint:
    """What deleting a concept removes (photos ... layouts) and what it leaves (runs,
    pictures)."""

    concept_id: int
    name: str
    token: str
    photos: int
    masks: int
    dataset_items: int
    layouts: int
    scores: int
    runs: int  # kept: runs trained on the concept keep their own record of it
    pictures: int  # kept: gallery pictures whose prompt names its token

    def goes(self) -> list[str]:
        """What goes, one phrase each (only what there is)."""
        def n(count: int, what: str) -> str:
            return f"{count} {what}{'s' * (count != 1)}"

        parts = [n(self.photos, "photo"), n(self.masks, "mask")]
        if self.dataset_items:
            parts.append(n(self.dataset_items, "dataset item"))
        if self.layouts:
            parts.append(n(self.layouts, "layout"))
        if self.scores:
            parts.append(n(self.scores, "score"))
        return parts

    def stays(self) -> list[str]:
        out = []
        if self.runs == 1:
            out.append(f"1 run trained on it keeps its weights and its own record of "
                       f"{self.token}")
        elif self.runs:
            out.append(f"{self.runs} runs trained on it keep their weights and their own "
                       f"record of {self.token}")
        if self.pictures:
            out.append(f"{self.pictures} generated picture{'s' * (self.pictures != 1)} "
                       "stay in the gallery")
        return out

    def describe(self) -> str:
        """The confirmation's text."""
        text = f"Delete the concept {self.name} {self.token}? This removes " \
               f"{', '.join(self.goes())}."
        stays = self.stays()
        if stays:
            text += " " + "; ".join(stays).capitalize() + "."
        return text + " This cannot be undone."

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mask_concepts(text: str | None) -> set[str]:
    with contextlib.suppress(ValueError, AttributeError):
        return {str(k) for k in json.loads(text or "{}")}
    return set()


def _layout_concepts(text: str | None) -> set[int]:
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        return {int(o["concept_id"]) for o in json.loads(text or "[]")
                if isinstance(o, dict) and "concept_id" in o}
    return set()


def _job_uses(entry: JournalEntry, concept: Concept) -> bool:
    """Whether a running job may read the concept: it names it, or it works on every
    concept of the project (it names none)."""
    if entry.name in _CONCEPT_FREE_JOBS:
        return False
    params = entry.params
    named_ids = [params[k] for k in ("concept_id",) if params.get(k) is not None]
    named_ids += list(params.get("concept_ids") or [])
    named = [c for c in params.get("concepts") or [] if isinstance(c, dict)]
    if named_ids or named:
        return concept.id in named_ids or any(
            str(c.get("name", "")).casefold() == concept.name.casefold()
            or c.get("token") == concept.token for c in named)
    return True


class ConceptRemoval:
    """Rename a concept's token, delete a concept with what was made from it."""

    if TYPE_CHECKING:
        def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

        def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]: ...

        def concept(self, concept_id: int) -> Concept: ...

        def _remove_unnamed(self, rels: list[str]) -> None: ...

        def running_jobs(self) -> list[JournalEntry]: ...

        root: Path

    # ------------------------------------------------------------------ jobs in the way

    def concept_refusal(self, concept_id: int, doing: str = "change") -> str | None:
        """Why the concept cannot be changed now (a job runs on data that uses it), or None."""
        concept = self.concept(concept_id)
        busy = [e for e in self.running_jobs() if _job_uses(e, concept)]
        if not busy:
            return None
        titles = "; ".join(e.title or e.name for e in busy)
        return (f"Cannot {doing} the concept {concept.name} {concept.token} while a job runs "
                f"on the project's data that uses it ({titles}). Wait for it to end or "
                "cancel it, then try again.")

    def _refuse_if_busy(self, concept_id: int, doing: str) -> None:
        refusal = self.concept_refusal(concept_id, doing)
        if refusal:
            raise ConceptBusyError(refusal)

    # ------------------------------------------------------------------ delete

    def _run_learned(self, run_id: int, concept: Concept) -> bool:
        """Whether the run's own snapshot (runs/<id>/dataset.json: what it trains or
        extracts) names the concept."""
        try:
            snapshot = json.loads((self.root / "runs" / str(run_id) / "dataset.json")
                                  .read_text(encoding="utf-8"))
            return any(isinstance(c, dict) and (c.get("id", c.get("concept_id")) == concept.id
                                                or c.get("token") == concept.token)
                       for c in snapshot.get("concepts") or [])
        except (OSError, ValueError, AttributeError):
            return False

    def _doomed(self, conn: sqlite3.Connection, concept: Concept
                ) -> tuple[list[int], list[int], list[str]]:
        """The dataset items and layouts that use the concept, and every file the rows that
        go name."""
        key = str(concept.id)
        items, files = [], []
        for row in conn.execute("SELECT id, image_file, masks_json FROM dataset_items"):
            masks = _mask_concepts(row["masks_json"])
            if key in masks:
                items.append(int(row["id"]))
                files.append(row["image_file"])
                with contextlib.suppress(ValueError, AttributeError):
                    files += [str(v) for v in json.loads(row["masks_json"]).values()]
        layouts = [int(r["id"]) for r in conn.execute("SELECT id, objects_json FROM layouts")
                   if concept.id in _layout_concepts(r["objects_json"])]
        for row in conn.execute("SELECT file FROM photos WHERE concept_id = ?", (concept.id,)):
            files.append(row["file"])
        for row in conn.execute("SELECT file, cutout_file FROM masks WHERE concept_id = ?",
                                (concept.id,)):
            files += [row["file"]] + ([row["cutout_file"]] if row["cutout_file"] else [])
        return items, layouts, [f for f in dict.fromkeys(files) if f]

    def concept_footprint(self, concept_id: int) -> ConceptFootprint:
        """What deleting the concept would remove, and what it would leave."""
        concept = self.concept(concept_id)
        with self._tx() as conn:  # one consistent reading
            return self._footprint(conn, concept)

    def _footprint(self, conn: sqlite3.Connection, concept: Concept) -> ConceptFootprint:
        items, layouts, _files = self._doomed(conn, concept)

        def count(sql: str, *args: Any) -> int:
            return int(conn.execute(sql, args).fetchone()[0])

        cid = concept.id
        runs = sum(1 for (run_id,) in conn.execute("SELECT id FROM runs")
                   if self._run_learned(int(run_id), concept))
        return ConceptFootprint(
            concept_id=cid, name=concept.name, token=concept.token,
            photos=count("SELECT COUNT(*) FROM photos WHERE concept_id = ?", cid),
            masks=count("SELECT COUNT(*) FROM masks WHERE concept_id = ?", cid),
            dataset_items=len(items), layouts=len(layouts),
            scores=count("SELECT COUNT(*) FROM scores WHERE concept_id = ?", cid),
            runs=runs,
            pictures=count("SELECT COUNT(*) FROM generations WHERE instr(prompt, ?)",
                           concept.token))

    def remove_concept(self, concept_id: int) -> ConceptFootprint:
        """Delete the concept with its photos, masks, scores, the dataset items and layouts
        that use it, in one transaction; then the files no row names any more. Refused
        (ConceptBusyError, nothing changed) while a job runs on data that uses it."""
        self._refuse_if_busy(concept_id, "delete")
        return self.drop_concept(concept_id)

    def drop_concept(self, concept_id: int) -> ConceptFootprint:
        """remove_concept without asking the journal: for the job that made the concept
        (an extraction that keeps its concepts inside its run)."""
        concept = self.concept(concept_id)
        with self._tx() as conn:
            footprint = self._footprint(conn, concept)
            items, layouts, files = self._doomed(conn, concept)
            conn.executemany("DELETE FROM dataset_items WHERE id = ?", [(i,) for i in items])
            conn.executemany("DELETE FROM layouts WHERE id = ?", [(i,) for i in layouts])
            conn.execute("DELETE FROM concepts WHERE id = ?", (concept_id,))
        self._remove_unnamed(files)
        return footprint
