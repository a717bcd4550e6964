"""One progress line for every front end: the CLI prints what the window shows."""

from __future__ import annotations

import io

from engine.cli.progress import ProgressPrinter
from engine.jobs import JobProgress, eta_text, progress_line


def test_the_line_says_how_far_the_time_left_and_what_the_job_does():
    assert eta_text(None) == "estimating…" and eta_text(32.4) == "0:32 left"
    assert eta_text(3725) == "1:02:05 left"
    assert progress_line(0.4, 32.4, "step 4/10") == "40% · 0:32 left · step 4/10"
    assert progress_line(1.7, None) == "100% · estimating…"
    assert progress_line(0.05, 5, title="Train") == "Train: 5% · 0:05 left"


def test_the_cli_prints_the_same_line():
    out = io.StringIO()
    printer = ProgressPrinter(stream=out)
    printer(JobProgress("j", 4, 10, 32.4, "step 4/10"))
    assert out.getvalue() == "40% · 0:32 left · step 4/10\n"
