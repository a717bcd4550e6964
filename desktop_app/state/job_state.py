"""One job as the window shows it: an observable object (observable.Evented) that the
JobsBridge keeps up to date from the job's events, and that every view of the job binds to
(the page that works on its data, its row in the jobs list, the status bar). So a page and the
jobs list show the same fraction, time left and message, and a job started elsewhere (the
resume bar, Personalize) is shown by the page whose data it works on like one it started.

    state = jobs.running_on("train", project.root)      # or jobs.job_added(state)
    bindings.bind(state, "line", status.setText)        # "40% · 0:32 left · step 4/10"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from desktop_app.state.observable import Evented, Field
from engine.jobs import (
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobPreview,
    JobProgress,
    JobStarted,
    eta_text,
    progress_line,
)

ENDED = ("finished", "failed", "cancelled")


class JobState(Evented):
    """What is known of one job; every field emits `<field>_changed` when it changes."""

    phase = Field("queued")  # queued, running, finished, failed, cancelled
    step = Field(0)
    total = Field(0)
    fraction = Field(0.0)
    eta_seconds = Field(None)
    eta = Field("")  # "0:32 left", "estimating…", "" before the first progress
    message = Field("")  # what the job says it does now
    line = Field("")  # progress_line: "40% · 0:32 left · step 4/10"
    preview = Field(None)  # the latest JobPreview
    end = Field(None)  # the terminal event (JobFinished / JobFailed / JobCancelled)

    def __init__(self, job_id: str, name: str, title: str, params: dict[str, Any] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job_id, self.name, self.title = job_id, name, title
        self.params: dict[str, Any] = dict(params or {})

    @property
    def ended(self) -> bool:
        return self.phase in ENDED

    @property
    def project(self) -> Path | None:
        """The project folder the job works on, when it names one."""
        folder = self.params.get("project")
        return Path(folder) if folder else None

    def works_on(self, name: str, project: Path | None) -> bool:
        """Whether this is a job `name` that has not ended, on the project at `project`."""
        return self.name == name and not self.ended and project is not None and \
            self.project is not None and self.project.resolve() == Path(project).resolve()

    def apply(self, event: JobEvent) -> None:
        """Follow one of the job's events."""
        if isinstance(event, JobStarted):
            self.params = {**self.params, **event.params}
            self.phase = "running"
        elif isinstance(event, JobProgress):
            self.phase = "running"
            self.step, self.total = event.step, event.total
            self.fraction = event.fraction
            self.eta_seconds = event.eta_seconds
            self.eta = eta_text(event.eta_seconds)
            self.message = event.message
            self.line = progress_line(event.fraction, event.eta_seconds, event.message)
        elif isinstance(event, JobPreview):
            self.preview = event
        elif isinstance(event, JobFinished | JobFailed | JobCancelled):
            self.end = event  # before the phase, so a view that hears the phase can read it
            self.eta = ""
            self.phase = ("finished" if isinstance(event, JobFinished) else
                          "failed" if isinstance(event, JobFailed) else "cancelled")
