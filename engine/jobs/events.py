"""Typed events a job emits: small picklable dataclasses, the same inline and from the worker.

queued → started → progress / preview / log … → exactly one of finished, failed, cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ErrorFields


@dataclass(frozen=True)
class JobEvent:
    job_id: str


@dataclass(frozen=True)
class JobQueued(JobEvent):
    name: str
    title: str


@dataclass(frozen=True)
class JobStarted(JobEvent):
    name: str
    title: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobProgress(JobEvent):
    step: int
    total: int
    eta_seconds: float | None
    message: str = ""

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.step / self.total)


@dataclass(frozen=True)
class JobPreview(JobEvent):
    png: bytes
    caption: str = ""


@dataclass(frozen=True)
class JobLog(JobEvent):
    text: str
    level: str = "info"


@dataclass(frozen=True)
class JobFinished(JobEvent):
    result: Any = None


@dataclass(frozen=True)
class JobFailed(JobEvent):
    """`reason` is the one line a person reads; `fields` what a front end acts on (the hint,
    the command, the missing model role: engine.errors.ErrorFields), never parsed from it."""

    reason: str
    detail: str = ""
    fields: ErrorFields = field(default_factory=ErrorFields)


@dataclass(frozen=True)
class JobCancelled(JobEvent):
    pass


TERMINAL_EVENTS = (JobFinished, JobFailed, JobCancelled)

EventSink = Callable[[JobEvent], None]


