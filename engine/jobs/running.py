"""The job boundary: run one job, emit started and exactly one terminal event.

The same function runs inline (the CLI, tests) or in the worker process (engine.jobs.worker);
only the event sink differs.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

from engine.errors import (
    REFUSED_BY_SAFETY_CHECK,
    Cancelled,
    ErrorFields,
    MyCanvasError,
    first_line,
    has_unsafe_advice,
)
from engine.jobs.context import CancelToken, JobContext, new_job_id
from engine.jobs.declaration import JobDeclaration, JobParams
from engine.jobs.events import (
    EventSink,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobStarted,
)
from engine.jobs.registry import declaration, job_target, resolve_job


def describe_failure(exc: BaseException) -> str:
    """The one-line reason a person reads when a job fails. It never passes on a library's
    advice to switch a safety check off."""
    if isinstance(exc, MyCanvasError):
        text = str(exc)
        return f"{type(exc).__name__}: {REFUSED_BY_SAFETY_CHECK}" if has_unsafe_advice(text) \
            else text
    from engine.atomic import is_disk_full
    from engine.device import is_out_of_memory

    if is_disk_full(exc):
        return ("No space left on the disk. Free some space and run it again: what was "
                "complete is kept.")
    if is_out_of_memory(exc):
        return (
            "Out of memory. Close other programs, pick a smaller model profile or a lower "
            "resolution, and try again."
        )
    if isinstance(exc, OSError) and exc.filename:
        return _file_failure(exc)
    text = first_line(str(exc))
    kind = type(exc).__name__
    return f"Unexpected {kind}: {text}" if text else f"Unexpected {kind}"


def _file_failure(exc: OSError) -> str:
    """An operating-system error about a file, as a line that names the file and says what
    to do (the libraries' own text puts the errno first and the path last)."""
    import errno

    from engine.atomic import not_writable_reason

    why = not_writable_reason(exc)
    if why is None:
        why = {errno.ENOENT: "it does not exist; check the path",
               errno.EISDIR: "it is a folder; give a file",
               errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
               errno.EEXIST: "it already exists; choose another name"}.get(
            exc.errno or 0, f"{(exc.strerror or str(exc)).lower()}")
    return f"{first_line(str(exc.filename))}: {why}"


def params_dict(params: JobParams | dict[str, Any]) -> dict[str, Any]:
    return params.to_dict() if isinstance(params, JobParams) else dict(params)


@dataclass
class JobSpec:
    """One job to run. `target` is resolved from the registry where the job is submitted,
    so a worker process runs exactly what its parent registered. `params` is the job's
    declared parameters dataclass (or a plain dict for an untyped test job)."""

    name: str
    params: JobParams | dict[str, Any] = field(default_factory=dict)
    title: str = ""
    job_id: str = field(default_factory=new_job_id)
    target: str = ""

    def __post_init__(self) -> None:
        if not self.target:
            self.target = job_target(self.name)
        decl = declaration(self.name)
        if decl is not None:
            if isinstance(self.params, dict):
                self.params = decl.params.from_dict(self.params)
            elif not isinstance(self.params, decl.params):
                raise MyCanvasError(f"Job {self.name} takes {decl.params.__name__}, "
                                    f"got {type(self.params).__name__}")
            if not self.title:
                self.title = decl.title_for(self.params)

    @classmethod
    def of(cls, decl: JobDeclaration, params: JobParams, title: str = "") -> JobSpec:
        return cls(decl.name, params, title)


def run_job(spec: JobSpec, ctx: JobContext) -> JobEvent:
    """Run one job at its boundary: emit started and exactly one terminal event, return it.

    Cancelled is recorded as cancelled; any other exception as failed with a readable reason
    (the traceback goes to `detail`, never to the user's face).
    """
    sink = ctx._sink
    sink(JobStarted(spec.job_id, spec.name, spec.title or spec.name, params_dict(spec.params)))
    try:
        fn = resolve_job(spec.target)
        if isinstance(spec.params, JobParams):
            result = fn(ctx, spec.params)
        else:
            result = fn(ctx, **spec.params)
        end: JobEvent = JobFinished(spec.job_id, result)
    except Cancelled:
        end = JobCancelled(spec.job_id)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) and ctx.cancelled:
            end = JobCancelled(spec.job_id)
        else:
            fields = exc.fields if isinstance(exc, MyCanvasError) else ErrorFields()
            end = JobFailed(spec.job_id, describe_failure(exc), traceback.format_exc(), fields)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                sink(end)
                raise
    sink(end)
    return end


def run_inline(
    name: str | JobDeclaration, params: JobParams | dict[str, Any] | None = None,
    sink: EventSink | None = None, cancel: CancelToken | None = None, title: str = "",
) -> JobEvent:
    """Run a job in this process (the CLI's path); returns the terminal event. An unknown
    job or parameters that do not fit raise MyCanvasError before anything runs."""
    job = name.name if isinstance(name, JobDeclaration) else name
    spec = JobSpec(job, params if params is not None else {}, title)
    ctx = JobContext(spec.job_id, sink or (lambda _e: None), cancel)
    return run_job(spec, ctx)
