"""The report stage's job, declared once: write an HTML report a user can share."""

from __future__ import annotations

from dataclasses import dataclass

from engine.jobs.declaration import JobDeclaration, JobResult, ProjectParams, param
from engine.score import TEST_MODEL_NOTE


@dataclass(frozen=True, kw_only=True)
class ReportParams(ProjectParams):
    run_id: int | None = param(None, flag="--run", minimum=1, metavar="RUN",
                               help="only this run (default: every run)")
    out: str | None = param(None, metavar="FILE",
                            help="the HTML file to write (default: reports/report-<time>.html "
                                 "in the project)")
    images: str = param("embed", choices=("embed", "beside"),
                        help="embed the pictures in the HTML (one file to share), or write "
                             "them in a folder beside it")
    top: int = param(3, minimum=1, maximum=24, help="best and worst pictures shown per run")


@dataclass(frozen=True)
class ReportWritten(JobResult):
    path: str  # the HTML file
    runs: int
    pictures: int
    files_dir: str | None = None  # the pictures' folder, with images="beside"
    test_model: bool = False  # some scores come from the tiny test models

    def summary(self) -> str:
        text = f"Report of {self.pictures} picture(s) in {self.runs} run(s): {self.path}"
        if self.test_model:
            text += f" (test models: {TEST_MODEL_NOTE})"
        return text


REPORT = JobDeclaration(
    "report", "engine.report.render:report_job", ReportParams, ReportWritten,
    title="Write the report",
    help="write an HTML report: best and worst pictures, scores per run and concept, charts")
JOBS = (REPORT,)
