"""A job's work run inside another job: one job, one event stream, one cancel.

`StageContext(parent, name, on_progress)` is the context another job's function is called
with (a chain calling each stage's job function; generation scoring its pictures). Its
progress goes to `on_progress(step, total, message)`, which maps it into the parent's own
(a span of one overall bar, with an ETA the parent works out). Its logs and previews become
the parent's, labelled with `label`. It shares the parent's cancel token, warm models and
cache, so a cancel lands at the inner job's next step boundary and models stay loaded from
one stage to the next.

Its job id is the parent's with `.name` appended: events carry the parent's id, but the
inner job's own bookkeeping keyed by its id (its row in the job journal: there is none, so it
notes nothing there) stays apart from the parent's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from engine.jobs.context import JobContext
from engine.jobs.events import JobEvent, JobLog, JobPreview

OnProgress = Callable[[int, int, str], None]


class StageContext(JobContext):
    def __init__(self, parent: JobContext, name: str, on_progress: OnProgress,
                 label: str = "") -> None:
        super().__init__(f"{parent.job_id}.{name}", self._forward, parent.cancel_token,
                         parent.cache, parent.models)
        self.parent = parent
        self.label = label
        self._on_progress = on_progress

    def progress(self, step: int, total: int, message: str = "") -> None:
        self.check_cancelled()
        self._on_progress(step, total, message)

    def progress_with_eta(self, step: int, total: int, eta: float | None,
                          message: str = "") -> None:
        self.progress(step, total, message)  # the parent works out its own ETA

    def _forward(self, event: JobEvent) -> None:
        if self.label and isinstance(event, JobLog):
            event = replace(event, text=f"{self.label}: {event.text}")
        elif self.label and isinstance(event, JobPreview):
            event = replace(event, caption=f"{self.label}: {event.caption}".rstrip(": "))
        self.parent.emit(event)
