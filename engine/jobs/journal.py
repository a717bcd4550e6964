"""Keeps the job journal of a project (engine.project.job_journal) from job events.

The process that watches a job (the window, or the command line) attaches one
`JournalWriter` to its event stream. A job with a `project` parameter gets a journal row in
that project when it starts, and its end is written when its terminal event arrives; a job
whose watcher dies without that event stays "running" with a dead owner, which the next
open reads as interrupted. Writing is best effort: a journal that cannot be written never
fails the job it describes.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from engine.errors import MyCanvasError
from engine.jobs.events import JobCancelled, JobEvent, JobFailed, JobFinished, JobStarted
from engine.jobs.registry import declaration

# Jobs that must not hold the project open while they run.
UNJOURNALED_JOBS = frozenset({"repair-project"})


def resumable(name: str) -> bool:
    """Whether running the job again with its journal's resume parameters continues it."""
    decl = declaration(name)
    return decl is not None and decl.resumable

_log = logging.getLogger(__name__)


class JournalWriter:
    """An event sink that writes the journal rows of the jobs it sees."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, Any] = {}  # job id -> the Project its row lives in
        self._names: dict[str, str] = {}  # job id -> job name
        self._interrupting = False

    def __call__(self, event: JobEvent) -> None:
        try:
            if isinstance(event, JobStarted):
                self._started(event)
            elif isinstance(event, JobFinished | JobFailed | JobCancelled):
                self._ended(event)
        except (MyCanvasError, OSError) as exc:
            _log.warning("could not write the job journal: %s", exc)

    def interrupt_all(self) -> None:
        """The app is quitting: jobs that end from now on were interrupted, not cancelled."""
        with self._lock:
            self._interrupting = True

    def record_unstarted(self, job_id: str, name: str, title: str,
                         params: dict[str, Any]) -> None:
        """A queued job that never started because the app quits: journal it as interrupted."""
        project = params.get("project")
        if not project or name in UNJOURNALED_JOBS:
            return
        from engine.project import Project

        try:
            with Project.open(project) as proj:
                proj.journal_started(job_id, name, title, params)
                proj.journal_ended(job_id, "interrupted", "The app was closed before it ran")
        except (MyCanvasError, OSError) as exc:
            _log.warning("could not write the job journal: %s", exc)

    def _started(self, event: JobStarted) -> None:
        project = event.params.get("project")
        if not project or event.name in UNJOURNALED_JOBS:
            return
        from engine.project import Project

        proj = Project.open(project)
        with self._lock:
            self._open[event.job_id] = proj
            self._names[event.job_id] = event.name
        proj.journal_started(event.job_id, event.name, event.title, event.params)

    def _ended(self, event: JobEvent) -> None:
        with self._lock:
            proj = self._open.pop(event.job_id, None)
            name = self._names.pop(event.job_id, "")
            interrupting = self._interrupting
        if proj is None:
            return
        try:
            if isinstance(event, JobFinished):
                proj.journal_ended(event.job_id, "finished")
                # Earlier runs of it cut short that this one completed are offered no more.
                decl = declaration(name)
                if decl is not None and decl.resumable:
                    proj.journal_settle_continued(event.job_id, decl.continues_on)
            elif isinstance(event, JobFailed):
                proj.journal_ended(event.job_id, "failed", event.reason)
            elif interrupting:
                proj.journal_ended(event.job_id, "interrupted", "The app was closed during it")
            else:
                proj.journal_ended(event.job_id, "cancelled")
        finally:
            proj.close()

    def close(self) -> None:
        """Give back the projects of jobs that never ended (their rows stay "running")."""
        with self._lock:
            projects, self._open = list(self._open.values()), {}
        for proj in projects:
            proj.close()
