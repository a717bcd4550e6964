"""Jobs: long work that reports typed events and can be cancelled at step boundaries.

    events.py        the typed events (queued, started, progress, preview, log, finished, ...)
    context.py       JobContext: progress with ETA, logs, previews, cancel, warm models
    stage_context.py StageContext: another job's function run inside a job, progress mapped
    declaration.py   JobDeclaration, typed parameters (JobParams) and results (JobResult)
    registry.py      finds every stage's declarations; test jobs by target
    running.py       the job boundary: run_job, run_inline, JobSpec
    stage_setup.py   resolve_stage: profile, device and model overrides, the same for every job
    warm_cache.py    WarmCache: models kept loaded between jobs, under a memory budget
    pipelines.py     run a diffusers pipeline with cancel-per-step and one lean OOM retry
    worker.py        JobRunner: jobs in a worker process, one at a time
    journal.py       JournalWriter: each job's row in its project's journal
    progress_text.py a job's progress in words (eta_text, progress_line): CLI and window
    builtin.py       the engine's own jobs: device-info, ensure-models, repair-project

Importing this package is cheap: no torch, no multiprocessing worker until one is started.
"""

from engine.jobs.context import (
    CancelToken,
    EtaEstimator,
    JobContext,
    format_eta,
    inline_context,
    new_job_id,
)
from engine.jobs.declaration import (
    JobDeclaration,
    JobParams,
    JobResult,
    ModelParams,
    ProjectParams,
    StageParams,
    param,
)
from engine.jobs.events import (
    TERMINAL_EVENTS,
    EventSink,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobLog,
    JobPreview,
    JobProgress,
    JobQueued,
    JobStarted,
)
from engine.jobs.progress_text import eta_text, progress_line
from engine.jobs.registry import declaration, declarations, job_target, register_job, resolve_job
from engine.jobs.running import JobSpec, describe_failure, run_inline, run_job
from engine.jobs.stage_context import StageContext

__all__ = [
    "TERMINAL_EVENTS",
    "CancelToken",
    "EtaEstimator",
    "EventSink",
    "JobCancelled",
    "JobContext",
    "JobDeclaration",
    "JobEvent",
    "JobFailed",
    "JobFinished",
    "JobLog",
    "JobParams",
    "JobPreview",
    "JobProgress",
    "JobQueued",
    "JobResult",
    "JobSpec",
    "JobStarted",
    "ModelParams",
    "ProjectParams",
    "StageContext",
    "StageParams",
    "declaration",
    "declarations",
    "describe_failure",
    "eta_text",
    "format_eta",
    "inline_context",
    "job_target",
    "new_job_id",
    "param",
    "progress_line",
    "register_job",
    "resolve_job",
    "run_inline",
    "run_job",
]
