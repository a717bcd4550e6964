"""A report a user can share: one HTML file (pictures embedded, or in a folder beside it)
that opens in any browser with no network.

    data.py     what it shows, gathered from the project (runs, scores, concepts, dataset)
    charts.py   the charts, as inline SVG we write ourselves (why: see its docstring)
    render.py   the `report` job: thumbnails, charts, the Jinja2 template, an atomic write
    jobs.py     the job, declared once

The template is resources/report/report.html.j2. Public API: `REPORT`, `ReportParams`,
`ReportWritten`. Importing this package is cheap.
"""

from engine.report.jobs import REPORT, ReportParams, ReportWritten

__all__ = ["REPORT", "ReportParams", "ReportWritten"]
