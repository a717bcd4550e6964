"""The `report` job: gather the data, make thumbnails and charts, fill the Jinja2 template
(resources/report/report.html.j2), write the HTML atomically.

Pictures are JPEG thumbnails (at most THUMB_SIDE px): embedded as data: URIs, so the one
file can be mailed, or written to `<report>_files/` beside it, for a lighter HTML. Either
way the page loads nothing from the network: no scripts, fonts or styles from elsewhere.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from engine.atomic import atomic_write_bytes, atomic_write_text
from engine.errors import InputError, ProjectError
from engine.paths import RESOURCES
from engine.project import Project
from engine.report import charts
from engine.report.data import ReportData, RunSection, downsample, gather, smoothed

if TYPE_CHECKING:
    from engine.jobs import JobContext
    from engine.report.jobs import ReportParams, ReportWritten

TEMPLATES = RESOURCES / "report"
THUMB_SIDE = 256
_METRIC_LABELS = {"cp-clip": "CP-CLIP", "ti-clip": "TI-CLIP", "cd-text": "CD text",
                  "cd-image": "CD image"}


class PictureFiles:
    """Thumbnails of project images: data: URIs, or JPEG files in `folder` (beside mode)."""

    def __init__(self, project: Project, folder: Path | None) -> None:
        self.project = project
        self.folder = folder
        self._done: dict[str, str | None] = {}
        self.written = 0

    def src(self, rel: str | None) -> str | None:
        """The <img src> of a project image, or None when the file cannot be read."""
        if not rel:
            return None
        if rel not in self._done:
            self._done[rel] = self._make(rel)
        return self._done[rel]

    def _make(self, rel: str) -> str | None:
        from engine.image_files import open_picture

        try:
            thumb = open_picture(self.project.abspath(rel))
        except InputError:
            return None
        thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
        buf = io.BytesIO()
        thumb.save(buf, format="JPEG", quality=85)
        data = buf.getvalue()
        if self.folder is None:
            return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        name = hashlib.sha256(rel.encode()).hexdigest()[:20] + ".jpg"
        try:
            atomic_write_bytes(self.folder / name, data)
        except OSError as exc:
            raise ProjectError(f"Could not write {self.folder / name}: "
                               f"{exc.strerror or exc}") from exc
        self.written += 1
        return f"{quote(self.folder.name)}/{name}"


def score_text(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _section_charts(section: RunSection) -> dict[str, str]:
    out = {}
    if section.loss:
        points = downsample(section.loss)
        trend = downsample(smoothed(section.loss))
        out["loss"] = charts.line_chart(
            "loss", f"Training loss, {section.title}",
            [charts.Series("loss per step", points), charts.Series("moving average", trend)],
            "step", "loss")
    for metric in ("cp-clip", "ti-clip"):
        values = [p.cp_clip if metric == "cp-clip" else p.ti_clip for p in section.pictures]
        out[metric] = charts.histogram(
            f"{metric}-distribution", f"{_METRIC_LABELS[metric]} of the pictures",
            {_METRIC_LABELS[metric]: [v for v in values if v is not None]}, "score")
    return out


def _guided_chart(data: ReportData) -> str | None:
    c = data.comparison
    if c is None:
        return None
    metrics = list(_METRIC_LABELS)
    return charts.bar_chart(
        "guided", "Layout-guided against unguided pictures: mean scores",
        [_METRIC_LABELS[m] for m in metrics],
        {f"guided ({c.guided['ti-clip'].n} scored)": [c.guided[m].mean for m in metrics],
         f"unguided ({c.unguided['ti-clip'].n} scored)": [c.unguided[m].mean for m in metrics]},
        "mean score")


def render_html(data: ReportData, files: PictureFiles, ctx: Any = None) -> str:
    """The report's HTML from its data; thumbnails are made as the template needs them."""
    import jinja2
    from markupsafe import Markup

    from engine import __version__
    from engine.score import (
        CUSTOM_CONCEPT101,
        DEFAULT_THRESHOLD,
        METRIC_NAMES,
        METRIC_SUMMARIES,
        TEST_MODEL_NOTE,
    )

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["score"] = score_text
    shown = [p for s in data.runs for p in (*s.best, *s.worst)]
    total = len(shown) + len(data.dataset.examples)
    step = 0

    def src(rel: str | None) -> str | None:
        nonlocal step
        if ctx is not None:  # a step boundary: the user may cancel here
            ctx.progress(step, total, f"pictures {step + 1}/{total}")
            step += 1
        return files.src(rel)

    # Our own SVG (engine/report/charts.py escapes every value it writes).
    section_charts = {s.key: {k: Markup(v) for k, v in _section_charts(s).items()}
                      for s in data.runs}
    guided = _guided_chart(data)
    return env.get_template("report.html.j2").render(
        data=data, src=src, charts=section_charts,
        metric_names=METRIC_NAMES, metric_summaries=METRIC_SUMMARIES,
        custom_concept101=CUSTOM_CONCEPT101, threshold=DEFAULT_THRESHOLD,
        test_note=TEST_MODEL_NOTE, labels=_METRIC_LABELS, version=__version__,
        guided_chart=Markup(guided) if guided else None,
        generated=dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))


def _out_path(project: Project, out: str | None) -> Path:
    if out is None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        return project.root / "reports" / f"report-{stamp}.html"
    path = Path(out).expanduser().absolute()
    if path.is_dir():
        raise InputError(f"--out {out} is a folder; give the report's file name")
    if path.suffix.lower() not in (".html", ".htm"):
        path = path.with_name(path.name + ".html")
    return path


def report_job(ctx: JobContext, params: ReportParams) -> ReportWritten:
    """Job: write the report and return where it is."""
    from engine.models.profiles import get_profile, profile_names
    from engine.report.jobs import ReportWritten

    with Project.open(params.project) as proj:
        if params.run_id is not None:
            proj.run(params.run_id)  # InputError "No run with id N" before anything is written
        out = _out_path(proj, params.out)
        ctx.progress(0, 1, "gathering the scores")
        tests = [n for n in profile_names() if get_profile(n).test_models]
        data = gather(proj, params.run_id, params.top, tests)
        folder = out.with_name(out.stem + "_files") if params.images == "beside" else None
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            if folder is not None:
                folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"Could not create {out.parent}: {exc.strerror or exc}") from exc
        files = PictureFiles(proj, folder)
        html = render_html(data, files, ctx)
        try:
            atomic_write_text(out, html)
        except OSError as exc:
            raise ProjectError(f"Could not write {out}: {exc.strerror or exc}") from exc
        ctx.progress(1, 1, "written")
    ctx.log(f"Report written to {out}")
    return ReportWritten(path=str(out), runs=len(data.runs), pictures=data.total_pictures,
                         files_dir=str(folder) if folder is not None else None,
                         test_model=data.test_scores)
