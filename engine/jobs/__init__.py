"""Jobs: long work that reports typed events and can be cancelled at step boundaries.

A job is a plain function `fn(ctx: JobContext, **params) -> result` registered under a name.
It reports through `ctx` (progress, log, preview) and calls `ctx.progress(...)` or
`ctx.check_cancelled()` at every step boundary; when the user cancelled, that raises
`Cancelled`, which the job boundary records as *cancelled*, never as an error.

The same function runs inline (the CLI, tests) or in the worker process (engine.jobs.worker);
only the event sink differs. Events are small picklable dataclasses.
"""

from __future__ import annotations

import importlib
import io
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.errors import Cancelled, MyCanvasError

# --------------------------------------------------------------------------- events


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
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class JobCancelled(JobEvent):
    pass


TERMINAL_EVENTS = (JobFinished, JobFailed, JobCancelled)

EventSink = Callable[[JobEvent], None]


# --------------------------------------------------------------------------- cancellation


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

    `cache` is a dict that survives between jobs in the same worker process, so loaded
    models stay warm; jobs key it by what they loaded (e.g. ("inpaint", profile, device)).
    """

    def __init__(
        self,
        job_id: str,
        sink: EventSink,
        cancel: CancelToken | None = None,
        cache: dict[Any, Any] | None = None,
    ) -> None:
        self.job_id = job_id
        self._sink = sink
        self.cancel_token = cancel or CancelToken()
        self.cache: dict[Any, Any] = cache if cache is not None else {}
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

    def log(self, text: str, level: str = "info") -> None:
        self._sink(JobLog(self.job_id, text, level))

    def preview(self, image: Any, caption: str = "", max_side: int = 512) -> None:
        """Send a PIL image (downscaled to max_side) as a PNG preview."""
        img = image.copy()
        img.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        self._sink(JobPreview(self.job_id, buf.getvalue(), caption))


def format_eta(seconds: float | None) -> str:
    """ETA for people: '0:42', '12:05', '1:02:03'; '--:--' while unknown."""
    if seconds is None:
        return "--:--"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def inline_context(sink: EventSink | None = None, job_id: str | None = None) -> JobContext:
    """A context for calling a job function directly (tests, scripts)."""
    return JobContext(job_id or new_job_id(), sink or (lambda _e: None))


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


# --------------------------------------------------------------------------- registry

# Job name -> "module:function". Modules are imported only when a job of theirs runs, so
# the registry costs nothing at start-up and the worker imports only what it needs.
JOB_REGISTRY: dict[str, str] = {
    "ensure-models": "engine.models.ensure:ensure_models_job",
    "device-info": "engine.device:device_info_job",
    "plan": "engine.plan.planner:plan_job",
    "build-dataset": "engine.dataset.build:build_dataset_job",
    "export-dataset": "engine.dataset.build:export_dataset_job",
    "import-photos": "engine.intake.photos:import_photos_job",
    "segment": "engine.segment.segment_photos:segment_job",
    "segment-prompts": "engine.segment.segment_photos:segment_prompts_job",
    "paint-mask": "engine.segment.segment_photos:paint_mask_job",
    "train": "engine.train.training_job:train_job",
    "repair-project": "engine.project.repair:repair_project_job",
}


def register_job(name: str, target: str) -> None:
    """Register `target` ("package.module:function") under `name`."""
    if ":" not in target:
        raise ValueError(f"job target must be 'module:function', got {target!r}")
    JOB_REGISTRY[name] = target


def job_target(name: str) -> str:
    try:
        return JOB_REGISTRY[name]
    except KeyError:
        raise MyCanvasError(f"Unknown job {name!r}") from None


def resolve_job(target: str) -> Callable[..., Any]:
    module_name, func_name = target.split(":", 1)
    return getattr(importlib.import_module(module_name), func_name)


# --------------------------------------------------------------------------- job boundary


def describe_failure(exc: BaseException) -> str:
    """The one-line reason a person reads when a job fails."""
    if isinstance(exc, MyCanvasError):
        return str(exc)
    from engine.device import is_out_of_memory

    if is_out_of_memory(exc):
        return (
            "Out of memory. Close other programs, pick a smaller model profile or a lower "
            "resolution, and try again."
        )
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    kind = type(exc).__name__
    return f"Unexpected {kind}: {text}" if text else f"Unexpected {kind}"


@dataclass
class JobSpec:
    """One job to run. `target` is resolved from the registry where the job is submitted,
    so a worker process runs exactly what its parent registered."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    title: str = ""
    job_id: str = field(default_factory=new_job_id)
    target: str = ""

    def __post_init__(self) -> None:
        if not self.target:
            self.target = job_target(self.name)


def run_job(spec: JobSpec, ctx: JobContext) -> JobEvent:
    """Run one job at its boundary: emit started and exactly one terminal event, return it.

    Cancelled is recorded as cancelled; any other exception as failed with a readable reason
    (the traceback goes to `detail`, never to the user's face).
    """
    sink = ctx._sink
    sink(JobStarted(spec.job_id, spec.name, spec.title or spec.name, dict(spec.params)))
    try:
        fn = resolve_job(spec.target)
        result = fn(ctx, **spec.params)
        end: JobEvent = JobFinished(spec.job_id, result)
    except Cancelled:
        end = JobCancelled(spec.job_id)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) and ctx.cancelled:
            end = JobCancelled(spec.job_id)
        else:
            end = JobFailed(spec.job_id, describe_failure(exc), traceback.format_exc())
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                sink(end)
                raise
    sink(end)
    return end


def run_inline(
    name: str, params: dict[str, Any] | None = None, sink: EventSink | None = None,
    cancel: CancelToken | None = None, title: str = "",
) -> JobEvent:
    """Run a registered job in this process (the CLI's path); returns the terminal event."""
    spec = JobSpec(name, dict(params or {}), title)
    ctx = JobContext(spec.job_id, sink or (lambda _e: None), cancel)
    return run_job(spec, ctx)
