"""The one place where engine jobs meet Qt: runner events become a Qt signal.

The runner calls listeners on its dispatcher thread; emitting a signal from there queues the
event to the GUI thread, so widgets only ever see events on their own thread. A view that
starts a job may pass `on_event` to hear that job's events (on the GUI thread) without
filtering the stream itself.

Each job queued here is also a JobState (job_state.py), kept up to date from its events before
anyone else hears them: views bind to it (`job_added`, `running_on`) instead of decoding
progress events themselves.

A job's declaration says what it changes in its project (`JobDeclaration.changes`); when such
a job sends a preview (it stored something just before) or ends, `data_changed` names those
parts, before the job's own `on_event` hears the event, so the views have reloaded by then.
The window hands them to its ProjectWatcher, which announces each commit once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from desktop_app.state.job_state import JobState
from engine.errors import ProjectError
from engine.jobs import (
    TERMINAL_EVENTS,
    JobDeclaration,
    JobEvent,
    JobParams,
    JobPreview,
    JobProgress,
    JobQueued,
    JobStarted,
    declaration,
    progress_line,
)
from engine.jobs.journal import JournalWriter
from engine.jobs.registry import owned_elsewhere
from engine.jobs.running import params_dict
from engine.jobs.worker import JobHandle, JobRunner

JobCallback = Callable[[JobEvent], None]


class JobsBridge(QObject):
    event = Signal(object)  # an engine.jobs.JobEvent
    status_changed = Signal(str)  # what runs now, for the status bar ("" when idle)
    data_changed = Signal(tuple)  # the parts of the project a job changed ("photos", ...)
    job_added = Signal(object)  # the JobState of a job just queued here, its params known

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = JobRunner()
        # Each job's row in its project's journal, written from the runner's own thread so
        # that even the cancel the runner sends while shutting down is recorded.
        self.journal = JournalWriter()
        self._remove_journal = self.runner.add_listener(self.journal)
        self._callbacks: dict[str, JobCallback] = {}
        self._titles: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._running: str | None = None
        self._closed = False
        self.states: dict[str, JobState] = {}  # the jobs that have not ended
        self.event.connect(self._route)
        self._remove = self.runner.add_listener(self.event.emit)

    def submit(self, job: JobDeclaration | str, params: JobParams | dict[str, Any] | None = None,
               title: str = "", on_event: JobCallback | None = None) -> JobHandle:
        """Queue a job in the worker process (its title defaults to the declaration's).
        Raises MyCanvasError for an unknown job, parameters that do not fit, or after
        shutdown, and ProjectError naming the process that already works on what the job
        would work on (a run, a build: another window's worker, a command line).
        `on_event` hears every later event of this job on the GUI thread."""
        name = job.name if isinstance(job, JobDeclaration) else job
        refusal = owned_elsewhere(name, params if params is not None else {})
        if refusal is not None:
            raise ProjectError(refusal)
        handle = self.runner.submit(job, params, title)
        # Only JobQueued was delivered before this line (synchronously, inside submit); every
        # later event crosses threads and arrives through the event loop, after it.
        if on_event is not None:
            self._callbacks[handle.job_id] = on_event
        state = self.states.get(handle.job_id)
        if state is not None:
            state.params = params_dict(handle.spec.params)
            self.job_added.emit(state)
        return handle

    def listen(self, job_id: str, on_event: JobCallback) -> bool:
        """Hear the later events of a job queued without a listener (the resume bar's), as
        a page that shows it does; False when it has one already or has ended."""
        if job_id in self._callbacks or job_id not in self.states:
            return False
        self._callbacks[job_id] = on_event
        return True

    def running_on(self, name: str, project: Path | None) -> JobState | None:
        """The job `name` queued here that works on the project at `project` and has not
        ended (the oldest), or None."""
        return next((s for s in self.states.values() if s.works_on(name, project)), None)

    def cancel(self, job_id: str) -> None:
        self.runner.cancel(job_id)

    def has_running_jobs(self) -> bool:
        return any(not h.done for h in self.runner.jobs())

    def unfinished_titles(self) -> list[str]:
        """Titles of the jobs that are queued or running, for the question before quitting."""
        return [h.spec.title or h.spec.name for h in self.runner.jobs() if not h.done]

    def shutdown(self, interrupted: bool = False) -> None:
        """Stop the worker. `interrupted`: the user quit during jobs; their journal rows say
        interrupted (offered for resuming on the next open), not cancelled."""
        if self._closed:
            return
        self._closed = True
        self._remove()
        self._callbacks.clear()
        if interrupted:
            self.journal.interrupt_all()
            for handle in self.runner.jobs():
                if not handle.done and not any(isinstance(e, JobStarted) for e in handle.events):
                    spec = handle.spec
                    self.journal.record_unstarted(spec.job_id, spec.name, spec.title,
                                                  params_dict(spec.params))
        self.runner.shutdown(timeout=3.0)
        self._remove_journal()
        self.journal.close()

    # ------------------------------------------------------------------ internals

    def _route(self, event: JobEvent) -> None:
        if isinstance(event, JobQueued | JobStarted):
            self._titles[event.job_id] = event.title
            self._names[event.job_id] = event.name
        if isinstance(event, JobQueued):
            self.states[event.job_id] = JobState(event.job_id, event.name, event.title)
        state = self.states.get(event.job_id)
        if state is not None:
            state.apply(event)
        self._track(event)
        if isinstance(event, (JobPreview, *TERMINAL_EVENTS)):
            # A failed or cancelled job may have stored part of its work: reload anyway.
            decl = declaration(self._names.get(event.job_id, ""))
            if decl is not None and decl.changes:
                self.data_changed.emit(tuple(decl.changes))
        callback = self._callbacks.get(event.job_id)
        if isinstance(event, TERMINAL_EVENTS):
            self._callbacks.pop(event.job_id, None)
            self._titles.pop(event.job_id, None)
            self._names.pop(event.job_id, None)
            self.states.pop(event.job_id, None)
        if callback is not None:
            callback(event)

    def _track(self, event: JobEvent) -> None:
        title = self._titles.get(event.job_id, "")
        if isinstance(event, JobStarted):
            self._running = event.job_id
            self.status_changed.emit(f"{title}: starting…")
        elif isinstance(event, JobProgress) and event.job_id == self._running:
            self.status_changed.emit(progress_line(event.fraction, event.eta_seconds,
                                                   title=title))
        elif isinstance(event, TERMINAL_EVENTS) and event.job_id == self._running:
            self._running = None
            self.status_changed.emit("")
