"""The job journal: which jobs ran on this project, and which were cut short.

A job is recorded as running when it starts, with the process that watches it (its
owner: the window, or the command line). When it ends the row says how. A row still
"running" whose owner is gone, or one the window marked "interrupted" when the user quit
during it, is an interrupted job: the next open names it and offers to resume it.
Mixed into Project, which supplies the connection plumbing.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.project.records import now_iso, to_json

JOB_STATES = ("running", "finished", "failed", "cancelled", "interrupted", "resumed",
              "dismissed")


@dataclass(frozen=True)
class JournalEntry:
    job_id: str
    name: str
    title: str
    params: dict[str, Any]
    state: str
    started_at: str
    ended_at: str | None = None
    reason: str = ""
    resume: dict[str, Any] = field(default_factory=dict)

    @property
    def resume_params(self) -> dict[str, Any]:
        """The parameters that continue this job: its own, updated by what it noted."""
        return {**self.params, **self.resume}


def _process_started(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None if it is gone.

    With the pid alone a new process that reuses the number would pass for the owner."""
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def owner_alive(pid: int | None, started: float | None) -> bool:
    if pid is None:
        return False
    now_started = _process_started(pid)
    if now_started is None:
        return False
    return started is None or abs(now_started - started) < 1.0


def _entry(row: sqlite3.Row) -> JournalEntry:
    return JournalEntry(job_id=row["job_id"], name=row["name"], title=row["title"] or "",
                        params=json.loads(row["params_json"] or "{}"), state=row["state"],
                        started_at=row["started_at"] or "", ended_at=row["ended_at"],
                        reason=row["reason"] or "",
                        resume=json.loads(row["resume_json"] or "{}"))


class JobJournal:
    """Journal rows of the jobs run on this project. Needs Project's plumbing."""

    if TYPE_CHECKING:

        def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

        def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]: ...

    def journal_started(self, job_id: str, name: str, title: str,
                        params: dict[str, Any]) -> None:
        """Record that a job started, owned by this process."""
        if not isinstance(job_id, str) or not job_id:
            raise InputError(f"Journal job id must be non-empty text, got {job_id!r}")
        pid = os.getpid()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO job_journal (job_id, name, title, params_json, state, owner_pid,"
                " owner_started, started_at) VALUES (?, ?, ?, ?, 'running', ?, ?, ?)"
                " ON CONFLICT (job_id) DO UPDATE SET state = 'running'",
                (job_id, name, title, to_json(params, "Job parameters"), pid,
                 _process_started(pid), now_iso()),
            )

    def journal_ended(self, job_id: str, state: str, reason: str = "") -> None:
        """Record how a job ended (finished, failed, cancelled or interrupted)."""
        if state not in JOB_STATES or state == "running":
            raise InputError(f"Journal state must be one of {', '.join(JOB_STATES[1:])}, "
                             f"got {state!r}")
        with self._tx() as conn:
            conn.execute("UPDATE job_journal SET state = ?, reason = ?, ended_at = ?"
                         " WHERE job_id = ?", (state, reason[:500], now_iso(), job_id))

    def journal_note_resume(self, job_id: str, **params: Any) -> None:
        """A running job notes what resuming it needs (e.g. the run it created); a job that
        is not journaled (run directly, in a test) notes nothing."""
        with self._tx() as conn:
            row = conn.execute("SELECT resume_json FROM job_journal WHERE job_id = ?",
                               (job_id,)).fetchone()
            if row is None:
                return
            resume = {**json.loads(row["resume_json"] or "{}"), **params}
            conn.execute("UPDATE job_journal SET resume_json = ? WHERE job_id = ?",
                         (to_json(resume, "Resume parameters"), job_id))

    def journal(self, limit: int = 50) -> list[JournalEntry]:
        """The newest journal rows first."""
        rows = self._rows("SELECT * FROM job_journal ORDER BY id DESC LIMIT ?", (int(limit),))
        return [_entry(r) for r in rows]

    def running_jobs(self) -> list[JournalEntry]:
        """Jobs running on this project now (their watching process is alive)."""
        return [_entry(r) for r in self._rows(
            "SELECT * FROM job_journal WHERE state = 'running' ORDER BY id")
            if owner_alive(r["owner_pid"], r["owner_started"])]

    def interrupted_jobs(self) -> list[JournalEntry]:
        """Jobs cut short and not yet resumed or dismissed, oldest first: marked interrupted,
        or still "running" although the process that watched them is gone."""
        out = []
        for row in self._rows("SELECT * FROM job_journal WHERE state IN "
                              "('running', 'interrupted') ORDER BY id"):
            if row["state"] == "running" and owner_alive(row["owner_pid"],
                                                          row["owner_started"]):
                continue
            out.append(_entry(row))
        return out

    def journal_settle_continued(self, job_id: str, keys: tuple[str, ...] | None) -> list[str]:
        """Job `job_id` finished: settle as resumed the interrupted rows of the same job that
        it continued (their resume parameters named in `keys` equal its own; None: all of
        them; (): any). Returns their job ids."""
        rows = self._rows("SELECT * FROM job_journal WHERE job_id = ?", (job_id,))
        if not rows:
            return []
        done = _entry(rows[0])
        mine = done.resume_params
        continued = []
        for entry in self.interrupted_jobs():
            if entry.name != done.name or entry.job_id == job_id:
                continue
            theirs = entry.resume_params
            names = set(theirs) | set(mine) if keys is None else keys
            if all(theirs.get(k) == mine.get(k) for k in names if k != "project"):
                self.settle_interrupted(entry.job_id, "resumed")
                continued.append(entry.job_id)
        return continued

    def settle_interrupted(self, job_id: str, state: str) -> None:
        """The user resumed or dismissed an interrupted job: it is not offered again."""
        if state not in ("resumed", "dismissed"):
            raise InputError(f"An interrupted job is settled as resumed or dismissed, "
                             f"not {state!r}")
        with self._tx() as conn:
            conn.execute("UPDATE job_journal SET state = ?, ended_at = COALESCE(ended_at, ?)"
                         " WHERE job_id = ? AND state NOT IN ('finished', 'failed',"
                         " 'cancelled')", (state, now_iso(), job_id))
