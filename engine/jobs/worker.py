"""The worker process: heavy jobs run here, one at a time, with models kept warm.

The caller (the GUI or a script) owns a `JobRunner`. It keeps the queue, hands the worker one
job at a time and relays the worker's events to listeners on a dispatcher thread. A job that
raises ends as `failed`; a worker that dies (killed, out of memory, a crash in native code)
also ends its job as `failed` with a reason, and the next job starts a fresh worker. The
caller's process is never touched by what happens inside the worker; the worker dies with
the caller (engine.jobs.parent_watch), so a killed window leaves no job running.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.errors import MyCanvasError
from engine.jobs.context import CancelToken, JobContext
from engine.jobs.declaration import JobDeclaration, JobParams
from engine.jobs.events import (
    TERMINAL_EVENTS,
    EventSink,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobQueued,
)
from engine.jobs.running import JobSpec, run_job
from engine.jobs.warm_cache import WarmCache

_READY = "ready"
_STOP = "stop"


# --------------------------------------------------------------------------- worker side


def _worker_main(requests: Any, events: Any, cancel_event: Any, parent_pid: int = 0,
                 death_signal: bool = False) -> None:
    from engine.jobs.parent_watch import die_with_parent
    from engine.project import set_program

    # A worker never outlives its window: nobody would read its events, and a second window
    # resuming the same run would race it.
    die_with_parent(parent_pid or os.getppid(), death_signal)
    set_program("the app's worker")
    # Ctrl-C in a terminal reaches the whole process group; cancelling is the parent's call.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cache: dict[Any, Any] = {}
    models = WarmCache()  # loaded models stay between jobs, under the device's budget
    parent = mp.parent_process()
    events.put((_READY, os.getpid()))
    while True:
        try:
            spec = requests.get(timeout=1.0)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return  # orphaned: nobody will read our events
            continue
        if spec == _STOP:
            return
        cancel_event.clear()
        ctx = JobContext(spec.job_id, events.put, CancelToken(cancel_event), cache, models)
        try:
            run_job(spec, ctx)
        except BaseException:
            return


# --------------------------------------------------------------------------- caller side


@dataclass
class JobHandle:
    """The caller's view of one submitted job."""

    spec: JobSpec
    runner: JobRunner
    events: list[JobEvent] = field(default_factory=list)
    _done: threading.Event = field(default_factory=threading.Event)

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    @property
    def outcome(self) -> JobEvent | None:
        return self.events[-1] if self._done.is_set() else None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> JobEvent:
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.spec.name} ({self.job_id}) still running")
        return self.events[-1]

    def cancel(self) -> None:
        self.runner.cancel(self.job_id)


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        sig = -exitcode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
        hint = " — most likely the system ran out of memory" if sig == signal.SIGKILL else ""
        return f"The worker process was stopped by signal {name}{hint}. Nothing was lost; " \
            "the job can be run again."
    return f"The worker process exited unexpectedly (exit code {exitcode}). Nothing was " \
        "lost; the job can be run again."


class JobRunner:
    """Queue of jobs executed one at a time in a warm worker process.

    Listeners (`add_listener`) receive every event on the dispatcher thread; a GUI adapter
    forwards them to its own thread. `start()` is optional: the first submit starts the worker.
    """

    def __init__(self, *, start_method: str = "spawn", cancel_grace: float | None = None):
        self._mp: Any = mp.get_context(start_method)  # a SpawnContext: has Process
        # After a cancel, a job that does not reach a step boundary within `cancel_grace`
        # seconds has its worker stopped; None waits for the job to notice.
        self._cancel_grace = cancel_grace
        self._lock = threading.RLock()
        self._listeners: list[EventSink] = []
        self._pending: collections.deque[JobHandle] = collections.deque()
        self._handles: dict[str, JobHandle] = {}
        self._current: JobHandle | None = None
        self._cancel_requested_at: float | None = None
        self._process: Any = None
        self._requests: Any = None
        self._events: Any = None
        self._cancel_event: Any = None
        self._ready = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.worker_starts = 0

    # ---------------------------------------------------------------- public API

    def add_listener(self, sink: EventSink) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(sink)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(sink)

        return remove

    @property
    def worker_pid(self) -> int | None:
        p = self._process
        return p.pid if p is not None and p.is_alive() else None

    def start(self, timeout: float = 60.0) -> None:
        """Start the worker now (instead of on first submit) and wait until it is ready."""
        with self._lock:
            self._ensure_worker()
        if not self._ready.wait(timeout):
            raise MyCanvasError("The worker process did not start in time")

    def submit(self, job: str | JobDeclaration,
               params: JobParams | dict[str, Any] | None = None, title: str = "") -> JobHandle:
        """Queue a job: a declaration (or its name) with its typed parameters (a dict is made
        into them, and refused with a readable InputError if it does not fit)."""
        if self._closed:
            raise MyCanvasError("The job runner has been shut down")
        name = job.name if isinstance(job, JobDeclaration) else job
        if params is None:
            params = {}
        elif isinstance(params, dict):
            params = dict(params)
        handle = JobHandle(JobSpec(name, params, title), self)
        with self._lock:
            self._handles[handle.job_id] = handle
            self._pending.append(handle)
            self._emit(JobQueued(handle.job_id, name, handle.spec.title or name))
            self._ensure_worker()
            self._maybe_dispatch()
        return handle

    def cancel(self, job_id: str) -> None:
        """Cancel a queued job at once, or ask the running one to stop at its next step."""
        with self._lock:
            handle = self._handles.get(job_id)
            if handle is None or handle.done:
                return
            if handle in self._pending:
                self._pending.remove(handle)
                self._emit(JobCancelled(job_id))
            elif handle is self._current:
                self._cancel_event.set()
                self._cancel_requested_at = time.monotonic()

    def jobs(self) -> list[JobHandle]:
        with self._lock:
            return list(self._handles.values())

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel everything, stop the worker and the dispatcher thread."""
        with self._lock:
            self._closed = True
            for handle in list(self._pending):
                self.cancel(handle.job_id)
            if self._current is not None:
                self.cancel(self._current.job_id)
            proc = self._process
            if proc is not None and proc.is_alive():
                with contextlib.suppress(Exception):
                    self._requests.put(_STOP)
        if proc is not None:
            proc.join(timeout)
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._lock:
            # The worker is gone: a job it was running ends as cancelled.
            if self._current is not None:
                self._finish_current(JobCancelled(self._current.job_id))
            self._close_queues()

    def __enter__(self) -> JobRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ---------------------------------------------------------------- internals

    def _emit(self, event: JobEvent) -> None:
        handle = self._handles.get(event.job_id)
        if handle is not None:
            handle.events.append(event)
            if isinstance(event, TERMINAL_EVENTS):
                handle._done.set()
        for sink in list(self._listeners):
            try:
                sink(event)
            except Exception:
                import logging

                logging.getLogger(__name__).exception("job event listener failed")

    def _ensure_worker(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        self._close_queues()
        self._requests = self._mp.Queue()
        self._events = self._mp.Queue()
        self._cancel_event = self._mp.Event()
        self._ready.clear()
        # The kernel's parent-death signal follows the thread that starts the worker: ask
        # for it only from a thread that lives as long as this runner.
        lasting = threading.current_thread() in (threading.main_thread(), self._thread)
        self._process = self._mp.Process(
            target=_worker_main,
            args=(self._requests, self._events, self._cancel_event, os.getpid(), lasting),
            name="mycanvas-worker",
            daemon=True,
        )
        self._process.start()
        self.worker_starts += 1
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._dispatch_loop, name="mycanvas-job-events", daemon=True
            )
            self._thread.start()

    def _close_queues(self) -> None:
        for q in (self._requests, self._events):
            if q is not None:
                with contextlib.suppress(Exception):
                    q.cancel_join_thread()
                    q.close()
        self._requests = self._events = None

    def _maybe_dispatch(self) -> None:
        if self._current is not None or not self._pending or not self._ready.is_set():
            return
        self._current = self._pending.popleft()
        self._cancel_requested_at = None
        self._requests.put(self._current.spec)

    def _finish_current(self, event: JobEvent) -> None:
        self._emit(event)
        self._current = None
        self._cancel_requested_at = None

    def _dispatch_loop(self) -> None:
        while True:
            with self._lock:
                events, proc = self._events, self._process
                if self._closed and (proc is None or not proc.is_alive()):
                    return
            if events is None:
                time.sleep(0.05)
                continue
            try:
                item = events.get(timeout=0.1)
            except (queue.Empty, OSError, ValueError, EOFError):
                self._check_worker(proc)
                continue
            with self._lock:
                if isinstance(item, tuple) and item and item[0] == _READY:
                    self._ready.set()
                    self._maybe_dispatch()
                    continue
                cur = self._current
                if cur is None or item.job_id != cur.job_id:
                    continue  # stale event from a job already settled
                if isinstance(item, TERMINAL_EVENTS):
                    self._finish_current(item)
                    self._maybe_dispatch()
                else:
                    self._emit(item)

    def _check_worker(self, proc: Any) -> None:
        with self._lock:
            if proc is None or proc is not self._process:
                return
            cur = self._current
            if (
                cur is not None and self._cancel_grace is not None
                and self._cancel_requested_at is not None
                and time.monotonic() - self._cancel_requested_at > self._cancel_grace
                and proc.is_alive()
            ):
                proc.kill()
                proc.join(2.0)
                self._finish_current(JobCancelled(cur.job_id))
                self._restart_if_needed()
                return
            if proc.is_alive():
                return
            exitcode = proc.exitcode
            if cur is not None:
                if self._cancel_requested_at is not None:
                    self._finish_current(JobCancelled(cur.job_id))
                else:
                    self._finish_current(JobFailed(cur.job_id, _death_reason(exitcode)))
            self._restart_if_needed()

    def _restart_if_needed(self) -> None:
        self._process = None
        self._ready.clear()
        if self._pending and not self._closed:
            self._ensure_worker()
