"""The one place where engine jobs meet Qt: runner events become a Qt signal.

The runner calls listeners on its dispatcher thread; emitting a signal from there queues the
event to the GUI thread, so widgets only ever see events on their own thread.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.worker import JobHandle, JobRunner


class JobsBridge(QObject):
    event = Signal(object)  # an engine.jobs.JobEvent

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = JobRunner()
        self._remove = self.runner.add_listener(self.event.emit)

    def submit(self, name: str, params: dict[str, Any] | None = None, title: str = "") -> JobHandle:
        return self.runner.submit(name, params, title)

    def cancel(self, job_id: str) -> None:
        self.runner.cancel(job_id)

    def shutdown(self) -> None:
        self._remove()
        self.runner.shutdown()
