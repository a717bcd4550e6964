"""The HTML report: rendered from a tiny-profile project scored by the score job, parsed back,
every section found; its charts hold the data; it loads nothing from the network."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from engine.jobs import JobFailed, JobFinished, run_inline
from engine.project import DatasetItem, GalleryQuery, Project
from engine.report import REPORT, ReportParams, charts
from engine.score import SCORE, ScoreParams

from scoring_project import make_scoring_project, picture, png  # isort: skip

VOID = {"img", "meta", "br", "hr", "input", "link", "source", "wbr", "area", "base", "col"}


class Page(HTMLParser):
    """Every element with its attributes and the ids of the elements around it."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []
        self.elements: list[tuple[str, dict[str, str], tuple[str, ...]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        inside = tuple(i for _t, i in self.stack if i)
        self.elements.append((tag, attributes, inside))
        if tag not in VOID:
            self.stack.append((tag, attributes.get("id")))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs},
                              tuple(i for _t, i in self.stack if i)))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        self.text.append(data)

    def ids(self) -> set[str]:
        return {a["id"] for _t, a, _i in self.elements if "id" in a}

    def find(self, tag: str, within: str | None = None, **attrs: str):
        return [a for t, a, inside in self.elements if t == tag
                and (within is None or within in inside)
                and all(a.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items())]

    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


@pytest.fixture(scope="module")
def scored(tmp_path_factory, tiny_models) -> Path:
    """The scoring test project with two dataset items, scored by the score job (tiny)."""
    folder = make_scoring_project(tmp_path_factory.mktemp("report") / "project")
    with Project.open(folder) as proj:
        layout = proj.layouts()[0]
        for i, state in enumerate(("auto-kept", "rejected")):
            image = picture(proj, [], 20 + i)
            proj.add_dataset_item(DatasetItem(
                image_file=proj.put_bytes(png(image), "png"), caption=f"item {i}",
                token_caption=f"<mochi> cat, item {i}", layout_id=layout.id,
                review_state=state, build_index=i))
    end = run_inline(SCORE, ScoreParams(project=str(folder), profile="tiny", device="cpu"))
    assert isinstance(end, JobFinished), end
    return folder


def _report(folder: Path, out: Path, **kw) -> tuple[Path, Page]:
    end = run_inline(REPORT, ReportParams(project=str(folder), out=str(out), **kw))
    assert isinstance(end, JobFinished), end
    path = Path(end.result.path)
    return path, Page(path.read_text(encoding="utf-8"))


def test_the_report_has_every_section(scored, tmp_path):
    path, page = _report(scored, tmp_path / "report.html")
    assert path == tmp_path / "report.html"
    with Project.open(scored) as proj:
        run = proj.runs()[0]
        pictures = proj.gallery(GalleryQuery(run_id=run.id))
    key = f"run-{run.id}"
    assert {"summary", "definitions", "runs", "concepts", key, f"{key}-best", f"{key}-worst",
            f"{key}-charts", "guided", "dataset", "test-models", "test-pictures"} <= page.ids()
    # Best and worst: ranked by CP-CLIP, the three pictures naming a concept.
    ranked = sorted((p for p in pictures if p.cp_clip is not None),
                    key=lambda p: (-p.cp_clip, p.id))
    best = [int(a["data-generation"]) for a in page.find("div", f"{key}-best", class_="card")]
    worst = [int(a["data-generation"]) for a in page.find("div", f"{key}-worst",
                                                          class_="card")]
    assert best == [p.id for p in ranked[:3]] and worst == []
    assert len(page.find("div", "dataset", class_="card")) == 1  # the kept item
    # Tables: a row per run and per concept.
    words = page.words()
    for concept in ("Mochi", "Cup", "Rocket"):
        assert concept in words
    assert "0.757–0.763" in words and "0.658–0.668" in words
    assert "test model" in words and "review state" in words
    assert f"{ranked[0].cp_clip:.3f}" in words


def test_the_charts_hold_the_data(scored, tmp_path):
    _path, page = _report(scored, tmp_path / "r.html")
    with Project.open(scored) as proj:
        run = proj.runs()[0]
        pictures = proj.gallery(GalleryQuery(run_id=run.id))
    key = f"run-{run.id}"
    kinds = [a["data-kind"] for a in page.find("svg", f"{key}-charts")]
    assert kinds == ["loss", "cp-clip-distribution", "ti-clip-distribution"]
    [raw, _trend] = page.find("polyline", f"{key}-charts")
    values = [tuple(map(float, v.split(":"))) for v in raw["data-values"].split()]
    assert values[:3] == [(1.0, 1.0), (2.0, 0.5), (3.0, pytest.approx(1 / 3, abs=1e-6))]
    assert len(values) == 30  # the sample line and the torn line are not losses
    cp_bars = [a for t, a, inside in page.elements if t == "rect" and a.get("data-count")
               and key in inside]
    assert sum(int(a["data-count"]) for a in cp_bars) == \
        sum(p.cp_clip is not None for p in pictures) + sum(p.ti_clip is not None
                                                           for p in pictures)
    [guided] = page.find("svg", "guided")
    assert guided["data-kind"] == "guided"
    bars = {(a["data-series"].split(" ")[0], a["data-category"]): float(a["data-value"])
            for a in page.find("rect", "guided") if "data-value" in a}
    guided_ti = [p.ti_clip for p in pictures if p.guided]
    assert bars[("guided", "TI-CLIP")] == pytest.approx(sum(guided_ti) / len(guided_ti),
                                                        rel=1e-5)


def test_the_report_needs_no_network(scored, tmp_path):
    path, page = _report(scored, tmp_path / "r.html")
    text = path.read_text(encoding="utf-8")
    assert not page.find("script") and not page.find("link") and not page.find("iframe")
    sources = [a.get("src", "") for _t, a, _i in page.elements] + \
        [a.get("href", "") for _t, a, _i in page.elements]
    assert not [s for s in sources if re.match(r"(https?:)?//", s)]
    assert "@import" not in text and "url(" not in text
    images = page.find("img")
    assert images and all(a["src"].startswith("data:image/jpeg;base64,") for a in images)


def test_pictures_beside_the_report(scored, tmp_path):
    path, page = _report(scored, tmp_path / "out" / "shared", images="beside")
    assert path.name == "shared.html"
    images = page.find("img")
    assert images
    for a in images:
        assert a["src"].startswith("shared_files/")
        assert (path.parent / a["src"]).is_file()
    embedded, _ = _report(scored, tmp_path / "embedded.html")
    assert path.stat().st_size < embedded.stat().st_size


def test_one_run_and_a_project_with_nothing_yet(scored, tmp_path):
    with Project.open(scored) as proj:
        run = proj.runs()[0]
    _path, page = _report(scored, tmp_path / "one.html", run_id=run.id, top=1)
    assert f"run-{run.id}" in page.ids() and "run-none" not in page.ids()
    assert len(page.find("div", f"run-{run.id}-best", class_="card")) == 1
    assert len(page.find("div", f"run-{run.id}-worst", class_="card")) == 1
    failed = run_inline(REPORT, ReportParams(project=str(scored), run_id=99,
                                             out=str(tmp_path / "none.html")))
    assert isinstance(failed, JobFailed) and "No run with id 99" in failed.reason
    assert not (tmp_path / "none.html").exists()
    empty = tmp_path / "empty"
    Project.create(empty, "Empty").close()
    _path, page = _report(empty, tmp_path / "empty.html")
    assert {"summary", "runs", "concepts", "guided", "dataset"} <= page.ids()
    assert "No runs and no pictures yet." in page.words()
    assert "test-models" not in page.ids()


def test_cli_report_prints_the_path(scored, tmp_path, capsys):
    from engine.cli import main

    out = tmp_path / "cli.html"
    assert main(["-q", "report", str(scored), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert out.is_file()
    assert main(["-q", "report", str(scored)]) == 0
    default = Path(capsys.readouterr().out.strip())
    assert default.parent == scored / "reports" and default.suffix == ".html"


# --------------------------------------------------------------------------- charts


def test_nice_ticks_cover_the_range_with_round_steps():
    assert charts.nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = charts.nice_ticks(0.13, 0.87)
    assert ticks[0] <= 0.13 and ticks[-1] >= 0.87
    assert charts.nice_ticks(5.0, 5.0)[0] <= 5.0
    assert charts.nice_ticks(0, 2, whole=True) == [0.0, 1.0, 2.0]  # counts: whole steps


def test_chart_markup_holds_escaped_values():
    svg = charts.histogram("h", "CP <b>", {"run <1>": [0.1, 0.1, 0.9], "b": [0.5]}, "score",
                           bins=4)
    page = Page(svg)
    counts = {(a["data-series"], int(a["data-count"])) for a in page.find("rect")
              if "data-count" in a}
    assert counts == {("run <1>", 2), ("run <1>", 1), ("b", 1)}
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    line = Page(charts.line_chart("l", "loss", [charts.Series("s", [(1, 2.0), (2, 1.0)])],
                                  "step", "loss"))
    assert line.find("polyline")[0]["data-values"] == "1:2 2:1"
    bars = Page(charts.bar_chart("b", "bars", ["x", "y"], {"g": [0.5, None]}, "v"))
    assert [a["data-value"] for a in bars.find("rect") if "data-value" in a] == ["0.5"]
    assert "no data" in charts.line_chart("l", "t", [], "x", "y")
