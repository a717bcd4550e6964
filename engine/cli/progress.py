"""Running a job from the command line: progress on stderr, Ctrl-C to cancel, the journal."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

from engine.errors import MyCanvasError
from engine.jobs.declaration import JobDeclaration, JobParams
from engine.jobs.events import JobCancelled, JobEvent, JobFailed, JobFinished, JobLog, JobProgress

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


class CancelledByUser(Exception):
    pass


class ProgressPrinter:
    """Draws job events on stderr: a bar with ETA on a terminal, sparse lines otherwise."""

    def __init__(self, stream: Any = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.quiet = quiet
        self._last_line = 0.0
        self._drawn = False

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        if isinstance(event, JobProgress):
            self._progress(event)
        elif isinstance(event, JobLog):
            self._clear()
            print(f"{event.level}: {event.text}" if event.level != "info" else event.text,
                  file=self.stream)

    def _progress(self, ev: JobProgress) -> None:
        from engine.jobs.progress_text import progress_line

        text = progress_line(ev.fraction, ev.eta_seconds, ev.message)
        if self.tty:
            filled = int(ev.fraction * 24)
            line = f"\r[{'#' * filled}{'.' * (24 - filled)}] {text}"[:118]
            self.stream.write(line.ljust(119))
            self.stream.flush()
            self._drawn = True
        elif time.monotonic() - self._last_line > 2.0 or ev.step >= ev.total:
            print(text, file=self.stream)
            self._last_line = time.monotonic()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * 119 + "\r")
            self._drawn = False

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False


def run_job_in_cli(job: JobDeclaration | str, params: JobParams | dict[str, Any],
                   args: argparse.Namespace) -> Any:
    """Run a job inline with progress; Ctrl-C cancels at the next step boundary. The job is
    journaled in its project, so a run killed here is offered for resuming later."""
    from engine.jobs.context import CancelToken
    from engine.jobs.journal import JournalWriter
    from engine.jobs.running import run_inline

    printer = ProgressPrinter(quiet=getattr(args, "quiet", False))
    journal = JournalWriter()
    token = CancelToken()

    def sink(event: JobEvent) -> None:
        journal(event)
        printer(event)

    def on_sigint(_sig: int, _frame: Any) -> None:
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        print("\nCancelling at the next step (Ctrl-C again to abort)…", file=sys.stderr)

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        end = run_inline(job, params, sink, token)
    finally:
        signal.signal(signal.SIGINT, old)
        printer.close()
        journal.close()
    if isinstance(end, JobFinished):
        return end.result
    if isinstance(end, JobCancelled):
        raise CancelledByUser()
    assert isinstance(end, JobFailed)
    if getattr(args, "debug", False):
        print(end.detail, file=sys.stderr)
    raise MyCanvasError(end.reason)
