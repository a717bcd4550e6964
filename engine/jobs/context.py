"""What a running job sees: progress with ETA, logs, previews, cooperative cancellation, and
the worker's warm models.

A job calls `ctx.progress(...)` (or `ctx.check_cancelled()`) at every step boundary; when the
user cancelled, that raises `Cancelled`, which the job boundary records as *cancelled*, never
as an error.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from engine.errors import Cancelled
from engine.jobs.events import EventSink, JobEvent, JobLog, JobPreview, JobProgress
from engine.jobs.warm_cache import WarmCache


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...
    def set(self) -> None: ...


class CancelToken:
    """Cooperative cancellation flag; backed by a threading or multiprocessing Event."""

    def __init__(self, flag: CancelFlag | None = None) -> None:
        self._flag: CancelFlag = flag if flag is not None else threading.Event()

    def cancel(self) -> None:
        self._flag.set()

    @property
    def cancelled(self) -> bool:
        return self._flag.is_set()

    def raise_if_cancelled(self) -> None:
        if self._flag.is_set():
            raise Cancelled()


# --------------------------------------------------------------------------- ETA


class EtaEstimator:
    """Seconds left from an exponential moving average of seconds per step.

    The first step is often slow (model warm-up), so it is weighted like any other and the
    average settles within a few steps.
    """

    def __init__(self, smoothing: float = 0.3, clock: Callable[[], float] = time.monotonic):
        self._smoothing = smoothing
        self._clock = clock
        self._last_step: int | None = None
        self._last_time = clock()
        self._per_step: float | None = None

    def update(self, step: int, total: int) -> float | None:
        now = self._clock()
        if self._last_step is not None and step > self._last_step:
            sample = (now - self._last_time) / (step - self._last_step)
            self._per_step = (
                sample
                if self._per_step is None
                else self._smoothing * sample + (1 - self._smoothing) * self._per_step
            )
        if self._last_step is None or step != self._last_step:
            self._last_step, self._last_time = step, now
        if self._per_step is None or total <= 0:
            return None
        return max(0.0, (total - step) * self._per_step)


# --------------------------------------------------------------------------- context


class JobContext:
    """What a running job sees: report progress, logs and previews; check for cancel.

    `models` is the worker's WarmCache: loaded models survive between jobs of one worker
    process, under a memory budget. `cache` is a plain dict for small things that are not
    models (kept between jobs too).
    """

    def __init__(
        self,
        job_id: str,
        sink: EventSink,
        cancel: CancelToken | None = None,
        cache: dict[Any, Any] | None = None,
        models: WarmCache | None = None,
    ) -> None:
        self.job_id = job_id
        self._sink = sink
        self.cancel_token = cancel or CancelToken()
        self.cache: dict[Any, Any] = cache if cache is not None else {}
        self.models = models if models is not None else WarmCache()
        self._eta = EtaEstimator()

    @property
    def cancelled(self) -> bool:
        return self.cancel_token.cancelled

    def check_cancelled(self) -> None:
        self.cancel_token.raise_if_cancelled()

    def progress(self, step: int, total: int, message: str = "") -> None:
        """Report step/total; also a step boundary, so it raises Cancelled if cancelled."""
        self.check_cancelled()
        eta = self._eta.update(step, total)
        self._sink(JobProgress(self.job_id, step, total, eta, message))

    def progress_with_eta(self, step: int, total: int, eta: float | None,
                          message: str = "") -> None:
        """`progress` with an ETA the job worked out itself (a chain of stages knows better
        than one average over all its steps); a step boundary too."""
        self.check_cancelled()
        self._sink(JobProgress(self.job_id, step, total, eta, message))

    def emit(self, event: JobEvent) -> None:
        """Send an event made by work running inside this job (engine.jobs.stage_context)
        as this job's own."""
        self._sink(replace(event, job_id=self.job_id))

    def log(self, text: str, level: str = "info") -> None:
        self._sink(JobLog(self.job_id, text, level))

    def preview(self, image: Any, caption: str = "", max_side: int = 512) -> None:
        """Send a PIL image (downscaled to max_side) as a PNG preview."""
        from engine.masks import png_bytes  # numpy comes with it: not at import time

        img = image.copy()
        img.thumbnail((max_side, max_side))
        self._sink(JobPreview(self.job_id, png_bytes(img), caption))


def format_eta(seconds: float | None) -> str:
    """ETA for people: '0:42', '12:05', '1:02:03'; '--:--' while unknown."""
    if seconds is None:
        return "--:--"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def inline_context(sink: EventSink | None = None, job_id: str | None = None,
                   models: WarmCache | None = None) -> JobContext:
    """A context for calling a job function directly (tests, scripts)."""
    return JobContext(job_id or new_job_id(), sink or (lambda _e: None), models=models)


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


