"""What the report shows, gathered from the project: per run its pictures' scores, the best
and worst pictures, its training loss; per concept how it scored; guided against unguided;
the dataset. Plain dataclasses, so the template only lays them out.

Best and worst pictures of a run are ranked by CP-CLIP (pictures whose prompt names a
concept), or by TI-CLIP when none of the run's pictures names one. Unscored pictures are
counted, never ranked. Trashed pictures are left out.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.project import Concept, GalleryImage, GalleryQuery, Project, Run

MAX_LOSS_POINTS = 400  # the loss chart's raw points (the smoothed line reads them all)


@dataclass(frozen=True)
class Stat:
    """Count, mean, median, min and max of some scores (None when there are none)."""

    n: int
    mean: float | None = None
    median: float | None = None
    low: float | None = None
    high: float | None = None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Stat:
        vs = [float(v) for v in values if v is not None]
        if not vs:
            return cls(0)
        return cls(len(vs), statistics.fmean(vs), statistics.median(vs), min(vs), max(vs))


@dataclass(frozen=True)
class ConceptRow:
    concept: Concept
    photos: int
    cutouts: int
    pictures: int  # pictures whose prompt names it
    scored: int
    detected: int  # scored pictures where OWL-ViT found it above the threshold
    cp_clip: Stat
    cd_image: Stat


@dataclass(frozen=True)
class Comparison:
    """Guided against unguided pictures (both must exist)."""

    guided: dict[str, Stat]
    unguided: dict[str, Stat]


@dataclass
class RunSection:
    key: str  # the HTML anchor: "run-3", or "run-none" for pictures of no run
    title: str
    run: Run | None
    pictures: list[GalleryImage]
    ranked_by: str  # "cp-clip" or "ti-clip"
    best: list[GalleryImage]
    worst: list[GalleryImage]
    stats: dict[str, Stat]
    concepts: list[ConceptRow]
    loss: list[tuple[float, float]]
    comparison: Comparison | None
    test_model: bool  # some of its scores come from test models

    @property
    def scored(self) -> int:
        return sum(1 for p in self.pictures if p.scored)


@dataclass
class DatasetSummary:
    items: int
    by_state: dict[str, int]
    layouts: int
    examples: list[Any] = field(default_factory=list)  # DatasetItem, kept ones first


@dataclass
class ReportData:
    project: str
    runs: list[RunSection]
    concepts: list[ConceptRow]
    comparison: Comparison | None
    dataset: DatasetSummary
    test_scores: bool  # some score comes from the tiny test models
    test_pictures: bool  # some picture was made with a test profile
    total_pictures: int

    @property
    def pictures(self) -> list[GalleryImage]:
        return [p for section in self.runs for p in section.pictures]


METRICS = ("cp-clip", "ti-clip", "cd-text", "cd-image")


def _value(picture: GalleryImage, metric: str) -> float | None:
    return {"cp-clip": picture.cp_clip, "ti-clip": picture.ti_clip, "cd-text": picture.cd_text,
            "cd-image": picture.cd_image}[metric]


def metric_stats(pictures: Sequence[GalleryImage]) -> dict[str, Stat]:
    return {m: Stat.of(_value(p, m) for p in pictures) for m in METRICS}


def rank(pictures: Sequence[GalleryImage], top: int
         ) -> tuple[str, list[GalleryImage], list[GalleryImage]]:
    """(metric ranked by, best first, worst first): see the module doc."""
    with_cp = [p for p in pictures if p.cp_clip is not None]
    metric = "cp-clip" if with_cp else "ti-clip"
    pool = with_cp or [p for p in pictures if p.ti_clip is not None]
    ordered = sorted(pool, key=lambda p: (-(_value(p, metric) or 0.0), p.id))
    best = ordered[:top]
    rest = [p for p in ordered if p not in best]
    worst = list(reversed(rest))[:top]
    return metric, best, worst


def concept_rows(project: Project, pictures: Sequence[GalleryImage]) -> list[ConceptRow]:
    rows = []
    for concept in project.concepts():
        current = project.current_masks(concept.id)
        scores = [c for p in pictures for c in p.concepts if c.concept_id == concept.id]
        scored = [c for c in scores if c.cp_clip is not None]
        rows.append(ConceptRow(
            concept, photos=len(project.photos(concept.id)),
            cutouts=sum(1 for m in current.values() if m.cutout_file),
            pictures=len(scores), scored=len(scored),
            detected=sum(1 for c in scored if c.detected),
            cp_clip=Stat.of(c.cp_clip for c in scored),
            cd_image=Stat.of(c.cd_image for c in scores)))
    return rows


def comparison(pictures: Sequence[GalleryImage]) -> Comparison | None:
    guided = [p for p in pictures if p.guided]
    unguided = [p for p in pictures if not p.guided]
    if not guided or not unguided:
        return None
    return Comparison(metric_stats(guided), metric_stats(unguided))


def training_loss(project: Project, run: Run) -> list[tuple[float, float]]:
    """(step, loss) of each logged step of a run's metrics file; torn lines are skipped."""
    if not run.metrics_file:
        return []
    path = project.abspath(run.metrics_file)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        step, loss = record.get("step"), record.get("loss")
        if isinstance(step, (int, float)) and isinstance(loss, (int, float)) and \
                not isinstance(loss, bool) and loss == loss:
            out.append((float(step), float(loss)))
    return out


def _run_title(run: Run | None, count: int) -> str:
    if run is None:
        return f"Pictures of no run (the base model), {count}"
    steps = run.config.get("steps")
    made = f", {steps} steps" if isinstance(steps, int) else ""
    return f"Run {run.id}: {run.kind}, {run.status}{made}"


def gather(project: Project, run_id: int | None, top: int,
           test_profiles: Iterable[str] = ()) -> ReportData:
    """Everything the report shows; `test_profiles` names the test profiles (their
    pictures are noise)."""
    pictures = project.gallery(GalleryQuery(run_id=run_id, sort="oldest"))
    profiles = set(test_profiles)
    by_run: dict[int | None, list[GalleryImage]] = {}
    for picture in pictures:
        by_run.setdefault(picture.generation.run_id, []).append(picture)
    runs = {r.id: r for r in project.runs()}
    # One section per run with pictures or a loss log, then the pictures of no run.
    wanted: list[int | None]
    if run_id is not None:
        wanted = [run_id]
    else:
        wanted = [rid for rid, run in runs.items() if rid in by_run or run.metrics_file]
        if None in by_run:
            wanted.append(None)
    sections = []
    for rid in wanted:
        run = runs.get(rid) if rid is not None else None
        mine = by_run.get(rid, [])
        ranked_by, best, worst = rank(mine, top)
        sections.append(RunSection(
            key=f"run-{rid}" if rid is not None else "run-none",
            title=_run_title(run, len(mine)), run=run, pictures=mine, ranked_by=ranked_by,
            best=best, worst=worst, stats=metric_stats(mine),
            concepts=[r for r in concept_rows(project, mine) if r.pictures],
            loss=training_loss(project, run) if run is not None else [],
            comparison=comparison(mine), test_model=any(
                p.test_model or p.generation.settings.get("profile") in profiles
                for p in mine)))
    items = project.dataset_items()
    states: dict[str, int] = {}
    for item in items:
        states[item.review_state] = states.get(item.review_state, 0) + 1
    kept = [i for i in items if i.review_state in ("accepted", "auto-kept")]
    # The project's figures come from real pictures only, when there are any: test models'
    # pictures (noise) keep their own run sections, flagged, and never move these.
    real = [p for p in pictures if p.generation.settings.get("profile") not in profiles]
    figures = real or pictures
    return ReportData(
        project=project.name, runs=sections, concepts=concept_rows(project, figures),
        comparison=comparison(figures),
        dataset=DatasetSummary(len(items), states, len(project.layouts()),
                               (kept or items)[:6]),
        test_scores=any(p.test_model for p in pictures),
        test_pictures=any(p.generation.settings.get("profile") in profiles for p in pictures),
        total_pictures=len(pictures))


def downsample(points: Sequence[tuple[float, float]], limit: int = MAX_LOSS_POINTS
               ) -> list[tuple[float, float]]:
    if len(points) <= limit:
        return list(points)
    step = len(points) / limit
    return [points[int(i * step)] for i in range(limit)] + [points[-1]]


def smoothed(points: Sequence[tuple[float, float]], weight: float = 0.9
             ) -> list[tuple[float, float]]:
    """An exponential moving average with its start-up bias removed (as TensorBoard smooths
    a loss): what the loss does under its step-to-step noise."""
    out, average = [], 0.0
    for i, (x, y) in enumerate(points):
        average = weight * average + (1 - weight) * y
        out.append((x, average / (1 - weight ** (i + 1))))
    return out
