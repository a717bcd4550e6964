"""Layout planning: the local LLM says what the scene is, a solver decides where things go.

For each layout the planner picks a group of concepts (2-4; the LLM proposes groups when a
project has more than four), a background scene for the group (the LLM proposes a few per
group), asks the LLM for a detailed caption of the group in that scene, reads the caption's
spatial relations and size words, and has engine.plan.layout_solver place the boxes so that they
honour them. Every LLM answer is checked (engine.plan.answers), asked again once, and else
replaced by a deterministic fallback: a scene from resources/planner_fallbacks.json and a
caption describing the solved boxes. So every stored layout is valid, whatever the model
said. `mycanvas plan PROJECT --count N` runs the `plan` job below inline; the app runs it in
its worker process, where the loaded model stays warm between jobs.
"""

from __future__ import annotations

import random
import secrets
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError, ModelMissingError
from engine.masks import mask_box
from engine.plan.answers import FallbackScene, object_labels, object_list, vocabulary
from engine.plan.layout_solver import LayoutSolver, Relation, Solution, SolverConfig, SolverObject
from engine.plan.llm import (
    Answer,
    CaptionPlan,
    LlamaTextModel,
    Semantics,
    TextModel,
    stable_seed,
)
from engine.project import Concept, Layout, LayoutObject, Project

if TYPE_CHECKING:
    from engine.jobs import JobContext
    from engine.jobs.stage_setup import StageSetup
    from engine.plan.jobs import PlannedLayouts, PlanParams

MAX_GROUP = 4
_CUTOUTS_PER_CONCEPT = 4  # enough for a typical aspect without reading every photo


@dataclass(frozen=True)
class PlanConcept:
    id: int
    name: str
    class_word: str
    aspect: float | None = None  # width / height of the concept's cut-out, when it has one


@dataclass(frozen=True)
class PlannedLayout:
    layout: Layout
    labels: tuple[str, ...]
    scene_source: str  # llm | fallback
    caption: Answer[CaptionPlan | None]
    solution: Solution
    seconds: float

    @property
    def caption_source(self) -> str:
        return self.caption.source if self.caption.value is not None else "fallback"

    @property
    def llm_used_without_fallback(self) -> bool:
        return self.scene_source == "llm" and self.caption_source != "fallback"


@dataclass
class _ScenePool:
    scenes: list[FallbackScene]
    sources: list[str]
    asked_again: bool = False


@dataclass
class LayoutPlanner:
    """Turns concepts into layouts; `plan` yields them one by one (store each as it comes)."""

    semantics: Semantics
    solver_config: SolverConfig | None = None
    check_cancelled: Callable[[], None] = lambda: None
    _heights: dict[str, float] = field(default_factory=dict)
    _pools: dict[tuple[int, ...], _ScenePool] = field(default_factory=dict)

    def plan(self, concepts: Sequence[PlanConcept], count: int, seed: int
             ) -> Iterator[PlannedLayout]:
        if len({c.id for c in concepts}) < 2:
            raise InputError("Planning needs at least two concepts in the project")
        solver = LayoutSolver(self.solver_config)
        groups = self.groups(concepts, seed)
        for i in range(count):
            self.check_cancelled()
            start = time.monotonic()
            group = groups[i % len(groups)]
            members = [concepts[j] for j in group]
            yield self._plan_one(members, i // len(groups), seed + i, seed, solver, start)

    def groups(self, concepts: Sequence[PlanConcept], seed: int) -> list[tuple[int, ...]]:
        if len(concepts) <= MAX_GROUP:
            return [tuple(range(len(concepts)))]
        labels = object_labels([(c.name, c.class_word) for c in concepts])
        answer = self.semantics.groups(labels, seed)
        self.check_cancelled()
        return [tuple(g) for g in answer.value]

    def _plan_one(self, members: list[PlanConcept], round_: int, layout_seed: int,
                  base_seed: int, solver: LayoutSolver, start: float) -> PlannedLayout:
        vocab = self.semantics.vocab
        labels = object_labels([(c.name, c.class_word) for c in members])
        priors = [vocab.lookup(c.class_word) for c in members]
        heights = [p.height_cm if p else self._height(label, base_seed)
                   for p, label in zip(priors, labels, strict=True)]
        wheres = [p.where if p else "any" for p in priors]
        scene, scene_source = self._scene(tuple(c.id for c in members), labels, wheres,
                                          round_, base_seed)
        caption = self.semantics.caption(labels, scene.text, heights, layout_seed)
        self.check_cancelled()
        plan = caption.value
        objects = []
        for k, (concept, prior) in enumerate(zip(members, priors, strict=True)):
            aspect = concept.aspect or (prior.width_cm / prior.height_cm if prior else 1.0)
            hint = plan.size_hints[k] if plan and len(plan.size_hints) == len(members) else 1.0
            objects.append(SolverObject(concept.id, heights[k], aspect, hint))
        solution = solver.solve(objects, plan.relations if plan else (), layout_seed)
        if plan is not None and not _honours(solution, plan.relations):
            # The caption would describe a picture the solver could not draw.
            caption = _as_fallback(caption)
            plan = None
        text = plan.text if plan else describe_layout(solution, labels, scene, layout_seed)
        source = (f"planner ({self.semantics.model.name if self.semantics.model else 'no LLM'}):"
                  f" scene {scene_source}, caption "
                  f"{caption.source if plan else 'fallback'}, boxes {solution.method}")
        layout = Layout(
            scene=scene.text, caption=text, source=source, seed=layout_seed,
            objects=tuple(LayoutObject(b.key, b.x, b.y, b.w, b.h, b.z) for b in solution.boxes),
        )
        return PlannedLayout(layout, tuple(labels), scene_source, caption, solution,
                             time.monotonic() - start)

    def _height(self, label: str, seed: int) -> float:
        if label not in self._heights:
            self._heights[label] = self.semantics.height_cm(label, seed).value
            self.check_cancelled()
        return self._heights[label]

    def _scene(self, key: tuple[int, ...], labels: list[str], wheres: list[str], round_: int,
               seed: int) -> tuple[FallbackScene, str]:
        pool = self._pools.get(key)
        if pool is None:
            answer = self.semantics.scenes(labels, wheres, stable_seed(*key, seed))
            self.check_cancelled()
            source = "llm" if answer.from_llm else "fallback"
            pool = self._pools[key] = _ScenePool(list(answer.value), [source] * len(answer.value))
        if round_ >= len(pool.scenes) and not pool.asked_again and "llm" in pool.sources:
            # More layouts than scenes: one more question for variety, kept only if good.
            pool.asked_again = True
            more = self.semantics.scenes(labels, wheres, stable_seed(*key, seed, "more"))
            self.check_cancelled()
            known = {s.text.lower() for s in pool.scenes}
            for scene in more.value if more.from_llm else []:
                if scene.text.lower() not in known:
                    pool.scenes.append(scene)
                    pool.sources.append("llm")
        k = round_ % len(pool.scenes)
        return pool.scenes[k], pool.sources[k]


def _normalised(rel: Relation) -> tuple[int, str, int]:
    if rel.kind == "right_of":
        return rel.other, "left_of", rel.subject
    if rel.kind == "behind":
        return rel.other, "in_front_of", rel.subject
    return rel.subject, rel.kind, rel.other


def _honours(solution: Solution, relations: Sequence[Relation]) -> bool:
    """Whether the boxes show every relation a caption states (none stated: always)."""
    kept = {_normalised(r) for r in solution.relations}
    return all(_normalised(r) in kept for r in relations)


def _as_fallback(answer: Answer[Any]) -> Answer[Any]:
    return Answer(None, "fallback", answer.attempts, answer.seconds)


def describe_layout(solution: Solution, labels: Sequence[str], scene: FallbackScene,
                    seed: int) -> str:
    """A caption read off the solved boxes: always names every object and the scene."""
    patterns = vocabulary().caption_patterns
    rng = random.Random(seed)
    order = sorted(range(len(labels)), key=lambda i: (solution.boxes[i].centre_x, i))
    on = [r for r in solution.relations if r.kind == "on"]
    where = f"{scene.prep} {scene.text}"
    if len(labels) == 2 and on:
        item, support = on[0].subject, on[0].other
        text = f"{object_list([labels[item]])} on {object_list([labels[support]])}, {where}"
    elif len(labels) == 2:
        a, b = (object_list([labels[i]]) for i in order)
        text = rng.choice(patterns["pair"]).format(a=a, b=b, prep=scene.prep, scene=scene.text)
    else:
        objects = object_list([labels[i] for i in order])
        text = rng.choice(patterns["many"]).format(objects=objects, prep=scene.prep,
                                                   scene=scene.text)
    return text[0].upper() + text[1:] + "."


# --------------------------------------------------------------------------- the job


def cutout_aspect(project: Project, concept_id: int) -> float | None:
    """Median width/height of the visible pixels of the concept's current cut-outs (newest
    photos first), else of its masks; None when it has neither or none can be read."""
    from engine.masks import read_cutout, read_mask

    current = project.current_masks(concept_id)
    aspects = []
    for photo_id in sorted(current, reverse=True)[:_CUTOUTS_PER_CONCEPT]:
        mask = current[photo_id]
        try:
            if mask.cutout_file:
                cutout = read_cutout(project.abspath(mask.cutout_file), mask.cutout_file)
                box = (0, 0, *cutout.size) if cutout else None
            else:
                box = mask_box(read_mask(str(project.abspath(mask.file))))
        except Exception:  # an unreadable file only costs us its aspect
            continue
        if box:
            aspects.append((box[2] - box[0]) / (box[3] - box[1]))
    return statistics.median(aspects) if aspects else None


def resolve_planner_model(setup: StageSetup, model_path: str | None = None,
                          chat_format: str | None = None) -> tuple[Path, str]:
    """The GGUF to load and its chat format: the job's, else the settings' file, else the
    profile's planner (the embedded model, assembled from its package on first use)."""
    settings = setup.settings
    fmt = settings.planner_chat_format if chat_format is None else chat_format
    chosen = model_path or settings.planner_gguf
    if chosen:
        path = Path(chosen).expanduser()
        if path.is_dir():
            raise InputError(f"The planner model set in Settings is a folder, not a GGUF "
                             f"file: {path}. Choose the .gguf file inside it.")
        if not path.is_file():
            raise ModelMissingError(f"The planner model set in Settings does not exist: {path}")
        return path, fmt
    return setup.role_path("planner"), fmt


def load_planner_model(ctx: JobContext, setup: StageSetup, path: Path,
                       chat_format: str) -> TextModel:
    """The loaded model, kept warm in the worker so the next plan job starts at once; one
    planner model in memory at a time."""
    st = path.stat()
    variant = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{chat_format}"
    key = setup.model_key("planner", variant)
    model = ctx.models.get(key)
    if model is not None:
        model.use_free_cores()
        return model
    ctx.models.evict_where(lambda k: k.role == "planner")
    return ctx.models.load(key, lambda: LlamaTextModel.load(path, chat_format),
                           size=st.st_size)


def _project_concepts(project: Project, names: Sequence[str] | None) -> list[PlanConcept]:
    concepts = project.concepts()
    if names:
        chosen: list[Concept] = []
        for name in names:
            concept = project.concept_by_name(name)
            if concept is None:
                raise InputError(f"No concept named {name!r} in this project")
            if concept.id not in {c.id for c in chosen}:
                chosen.append(concept)
        concepts = chosen
    if len(concepts) < 2:
        raise InputError("Planning needs at least two concepts; add another with "
                         "`mycanvas add-concept`")
    return [PlanConcept(c.id, c.name, c.class_word, cutout_aspect(project, c.id))
            for c in concepts]


def plan_job(ctx: JobContext, params: PlanParams) -> PlannedLayouts:
    """Plan `count` layouts into the project. Each layout is stored as soon as it is made,
    so a cancelled job leaves only complete layouts behind."""
    from engine.jobs.stage_setup import resolve_stage
    from engine.plan.jobs import PlannedLayouts

    count = params.count
    config = SolverConfig(max_iou=params.max_iou)
    base_seed = secrets.randbelow(1 << 31) if params.seed is None else params.seed
    setup = resolve_stage(params)
    started = time.monotonic()
    with Project.open(params.project) as proj:
        plan_concepts = _project_concepts(proj, params.concepts)
        ctx.progress(0, count, "loading the planner model")
        path, fmt = resolve_planner_model(setup, params.model_path, params.chat_format)
        model = load_planner_model(ctx, setup, path, fmt)
        semantics = Semantics(model, vocabulary(), should_stop=lambda: ctx.cancelled)
        planner = LayoutPlanner(semantics, config, ctx.check_cancelled)
        ids: list[int] = []
        from_llm, any_llm = 0, False
        for i, planned in enumerate(planner.plan(plan_concepts, count, base_seed)):
            ctx.check_cancelled()
            stored = proj.add_layout(planned.layout)
            assert stored.id is not None
            ids.append(stored.id)
            from_llm += planned.llm_used_without_fallback
            any_llm |= planned.scene_source == "llm" or planned.caption_source != "fallback"
            ctx.progress(i + 1, count, f"{', '.join(planned.labels)} — {planned.layout.scene}")
    if not any_llm:
        ctx.log(f"None of {path.name}'s answers passed the checks; these layouts use fallback "
                "scenes and captions.", "warning")
    return PlannedLayouts(ids, base_seed, path.name, from_llm,
                          round(time.monotonic() - started, 2))
