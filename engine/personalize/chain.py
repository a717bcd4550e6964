"""The `personalize` job: what is still missing, in order, in one job.

    segment  photos without a mask            (engine.segment SEGMENT)
    plan     layouts, if there are too few    (engine.plan PLAN)
    dataset  items #0..N-1 that are missing   (engine.dataset BUILD_DATASET)
    train    the chain's run: new, resumed, or finished already   (engine.train TRAIN)
    generate pictures from the layouts, guided by their boxes     (engine.generate GENERATE)
    score    the chain's pictures without scores                  (engine.score)

Each stage's job function runs in this process with a StageContext (engine.jobs): its
progress moves its span of one bar (weighted by the plan's estimated seconds, with an ETA;
what each stage took refines the next plan: timings.py),
its logs and previews are this job's, and a cancel lands at its next step. What is done is
found in the project at every start (engine/personalize/state.py), so a cancel, a crash or a
killed worker is resumed by running the job again: every stage resumes its own work and a
finished stage is skipped. Nothing the user made is redone or overwritten (see state.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import DiskFullError, InputError, ModelMissingError
from engine.personalize.jobs import Personalized, StageOutcome
from engine.personalize.state import ChainBook, ChainState, picture_batch, read_chain_state

if TYPE_CHECKING:
    from collections.abc import Sequence

    from engine.jobs import JobContext, JobDeclaration, JobParams
    from engine.jobs.stage_setup import StageSetup
    from engine.personalize.calibration import Calibration
    from engine.personalize.jobs import PersonalizeParams, Plan, StagePlan
    from engine.personalize.presets import PresetSettings
    from engine.personalize.progress import ChainProgress
    from engine.personalize.timings import StageTimings
    from engine.project import Project


@dataclass
class _Chain:
    ctx: JobContext
    params: PersonalizeParams
    setup: StageSetup
    project: Project
    settings: PresetSettings
    plan: Plan
    progress: ChainProgress
    calibration: Calibration | None = None  # this machine's speeds
    timings: StageTimings | None = None  # what stages took here: each finished one refines it
    outcomes: list[StageOutcome] = field(default_factory=list)

    # ------------------------------------------------------------------ plumbing

    def common(self, device: bool = True) -> dict[str, Any]:
        """What every stage is given: the same project, profile, device and model files."""
        out: dict[str, Any] = {"project": self.params.project,
                               "profile": self.setup.profile.name,
                               "overrides": self.params.overrides}
        if device:
            out["device"] = self.params.device or self.setup.device_name
        return out

    def state(self) -> ChainState:
        return read_chain_state(self.project, self.setup.profile, check_models=False)

    def run_stage(self, stage: str, decl: JobDeclaration[Any], params: JobParams,
                  phases: Sequence[float] | None = None,
                  part: tuple[float, float] = (0.0, 1.0), load: float | None = None) -> Any:
        """The stage's job function, in this process, in this job (in `part` of the
        stage's span of the bar; `phases`, `load`: the plan's unless given)."""
        from engine.jobs import resolve_job

        if phases is None:
            phases = self.stage_plan(stage).parts or (1.0,)
        if load is None:
            load = self.load_share(stage)
        return resolve_job(decl.target)(self.progress.context(stage, phases, part, load),
                                        params)

    def stage_plan(self, stage: str) -> StagePlan:
        return next(s for s in self.plan.stages if s.stage == stage)

    def load_share(self, stage: str) -> float:
        """The share of the stage's span of the bar before its first unit of work."""
        span = _weights(self.plan).get(stage, 0.0)
        return min(1.0, self.stage_plan(stage).load_seconds / span) if span > 0 else 0.0

    def skip(self, stage: str, why: str) -> None:
        self.outcomes.append(StageOutcome(stage, "skipped", why))
        self.progress.done(stage, f"skipped: {why}")
        self.ctx.log(f"{stage}: nothing to do ({why})")

    def done(self, stage: str, detail: str, began: float) -> None:
        now = time.monotonic()
        took = now - began
        self.outcomes.append(StageOutcome(stage, "done", detail, round(took, 2)))
        self.progress.done(stage, "done")
        if self.timings is not None:  # the next plan learns what this one missed
            from engine.personalize.presets import device_kind
            from engine.personalize.timings import record_stage

            assert self.setup.device is not None
            planned = _weights(self.plan).get(stage, 0.0)
            load = self.progress.first_unit.get(stage, now) - began
            learned = record_stage(
                self.timings, self.setup.profile.name, device_kind(self.setup.device), stage,
                planned_load=min(planned, self.stage_plan(stage).load_seconds),
                planned=planned, load=load, took=took)
            self.ctx.log(f"{stage}: took {took:.1f} s ({load:.1f} s loading), planned "
                         f"{planned:.1f} s; the next plan takes {learned.load:.1f} s to load "
                         f"and its work × {learned.scale:.2f}")

    # ------------------------------------------------------------------ the stages

    def segment(self) -> None:
        from engine.segment import SEGMENT, SegmentParams

        if not self.state().photos_to_segment:
            return self.skip("segment", "every photo has a mask")
        began = time.monotonic()
        result = self.run_stage("segment", SEGMENT, SegmentParams(**self.common()))
        for failure in result.failed:
            self.ctx.log(f"segment: {failure['photo']}: {failure['reason']}", "warning")
        self.done("segment", f"{len(result.masks)} mask(s) made"
                  + (f", {len(result.failed)} photo(s) failed" if result.failed else ""), began)

    def plan_layouts(self) -> None:
        from engine.plan import PLAN, PlanParams

        book = ChainBook.read(self.project).settle(self.project)
        state = self.state()
        todo = self.settings.layouts - len(state.layouts) - state.deleted_layouts
        if todo <= 0:
            return self.skip("plan", f"{len(state.layouts)} layout(s) there"
                             + (f", {state.deleted_layouts} deleted by you"
                                if state.deleted_layouts else ""))
        began = time.monotonic()
        # Noted first: the layouts above this id are the chain's, even after a kill.
        book.planning_from = max((int(lay.id or 0) for lay in self.project.layouts()),
                                 default=0)
        book.write(self.project)
        result = self.run_stage("plan", PLAN, PlanParams(
            **self.common(device=False), count=todo,
            seed=self.params.seed + len(book.planned_layouts)))
        book = ChainBook.read(self.project).settle(self.project)
        book.planned_layouts = sorted(set(book.planned_layouts) | set(result.layout_ids))
        book.planning_from = None
        book.write(self.project)
        self.done("plan", f"{len(result.layout_ids)} layout(s) planned", began)

    def dataset(self) -> None:
        from engine.dataset import BUILD_DATASET, BuildDatasetParams

        state, count = self.state(), self.settings.items
        if all(i in state.dataset_indices for i in range(count)):
            return self.skip("dataset", f"items #0..{count - 1} are there")
        if not state.layouts:
            raise InputError("There are no layouts to build the dataset from (the ones "
                             "Personalize planned were deleted): plan some on the Layouts "
                             "page or with `mycanvas plan`, then Personalize again")
        began = time.monotonic()
        result = self.run_stage("dataset", BUILD_DATASET, BuildDatasetParams(
            **self.common(), count=count, steps=self.settings.dataset_steps,
            seed=self.params.seed, resolution=self.settings.resolution))
        self.done("dataset", result.summary(), began)

    def train(self) -> int:
        from engine.personalize.planning import run_key
        from engine.train import TRAIN, TrainParams

        key = run_key(self.settings, self.params.seed)
        run = self.state().run
        same = run is not None and run.key == key and not run.test_models
        if run is not None and same and run.status == "finished":
            self.skip("train", f"run {run.run_id} is trained")
            return run.run_id
        began = time.monotonic()
        if run is not None and same:
            self.ctx.log(f"train: resuming run {run.run_id} at step {run.done_steps}")
            params = TrainParams(**self.common(), run_id=run.run_id, config={})
        else:
            book = ChainBook.read(self.project).settle(self.project)
            book.training_from = max((int(r.id or 0) for r in self.project.runs()), default=0)
            book.training_key = key
            book.write(self.project)
            s = self.settings
            params = TrainParams(**self.common(), config={
                "steps": s.train_steps, "seed": self.params.seed,
                "checkpoint_every": s.checkpoint_every, "sample_every": s.sample_every,
                "sample_steps": s.sample_steps,
                **({"resolution": s.resolution} if s.resolution else {})})
        result = self.run_stage("train", TRAIN, params)
        book = ChainBook.read(self.project).settle(self.project)
        book.run_id, book.run_key = result.run_id, key
        book.training_from = book.training_key = None
        book.write(self.project)
        self.done("train", result.summary(), began)
        return int(result.run_id)

    def generate(self, run_id: int) -> None:
        from engine.generate import GENERATE, GenerateParams, load_run_concepts

        state = self.state()
        learned = {c.token for c in load_run_concepts(self.project, run_id).concepts}
        tokens = {c.id: c.token for c in self.project.concepts()}
        layouts = [lid for lid in state.chain_layouts
                   if all(tokens.get(o.concept_id) in learned
                          for o in self.project.layout(lid).objects)]
        if not layouts:
            return self.skip("generate", f"no layout places only concepts run {run_id} "
                                         "learned")
        seeds: dict[int, list[int]] = {}
        for k in range(self.settings.pictures):
            seeds.setdefault(layouts[k % len(layouts)], []).append(self.params.seed + k)
        todo = {lid: s for lid, s in seeds.items()
                if state.pictures_by_batch.get(picture_batch(run_id, lid), 0) < len(s)}
        if not todo:
            return self.skip("generate", f"the {self.settings.pictures} picture(s) are made")
        began = time.monotonic()
        pictures = sum(len(s) for s in todo.values())
        phases = self._generate_phases(pictures)
        steps = self.settings.picture_steps
        made, start = 0, 0.0
        first_load = self.load_share("generate")  # the first call loads the models
        for lid, picture_seeds in todo.items():  # one call per layout, a part of the span
            width = (1.0 - first_load) * len(picture_seeds) / pictures
            if not start:
                width += first_load
            result = self.run_stage("generate", GENERATE, GenerateParams(
                **self.common(), run_id=run_id, layout_id=lid, seeds=picture_seeds,
                steps=steps, batch=picture_batch(run_id, lid), width=self.settings.resolution,
                height=self.settings.resolution,
                preview_every=max(1, steps // 4)), phases, (start, start + width),
                first_load / width if not start else 0.0)
            made += len(result.generation_ids)
            start += width
        self.done("generate", f"{made} picture(s) made", began)

    def _generate_phases(self, pictures: int) -> tuple[float, ...]:
        """Each generate call's phases, by estimated seconds: pictures, then (when the
        scoring models are here) their scores."""
        gen = next(s for s in self.plan.stages if s.stage == "generate")
        score = next(s for s in self.plan.stages if s.stage == "score")
        if not score.runs:
            return (1.0,)
        return (max(gen.seconds - gen.load_seconds, 1e-3),
                max(score.seconds * pictures / score.count, 1e-3))

    def score(self) -> None:
        from engine.score import ScoreParams, score_pictures, scoring_models_present

        unscored = self.state().unscored
        if not unscored:
            return self.skip("score", "every picture has scores")
        if not scoring_models_present(self.setup.profile.name, self.params.overrides):
            return self.skip("score", "the scoring models (CLIP, OWL-ViT) are not on this "
                                      "computer")
        began = time.monotonic()
        context = self.progress.context("score", load=self.load_share("score"))
        result = score_pictures(context, ScoreParams(**self.common(),
                                                     generation_ids=list(unscored)))
        self.done("score", result.summary(), began)


def _weights(plan: Plan) -> dict[str, float]:
    """The progress bar's span of each stage: its estimated seconds. Scores of the pictures
    made now are taken inside generation, so their share goes with it."""
    seconds = {s.stage: s.seconds for s in plan.stages}
    gen = next(s for s in plan.stages if s.stage == "generate")
    score = next(s for s in plan.stages if s.stage == "score")
    if score.runs and gen.runs:
        moved = score.seconds * min(gen.count, score.count) / score.count
        seconds["generate"] += moved
        seconds["score"] -= moved
    # A stage the plan skips may still find work (a photo added meanwhile): a sliver each.
    floor = 0.01 * max(1.0, plan.seconds)
    return {stage: max(value, floor) for stage, value in seconds.items()}


def personalize_job(ctx: JobContext, params: PersonalizeParams) -> Personalized:
    """Job: run what is missing of the chain (see the module doc)."""
    from engine.jobs.stage_setup import resolve_stage
    from engine.personalize.planning import (
        calibration_for,
        format_bytes,
        needed_missing,
        personalize_plan,
        plan_text,
        timings_for,
    )
    from engine.personalize.presets import device_kind, settings_for
    from engine.personalize.progress import ChainProgress
    from engine.project import Project, exclusive

    began = time.monotonic()
    setup = resolve_stage(params)
    assert setup.device is not None
    with Project.open(params.project) as proj, exclusive(proj.root, "personalize",
                                                         "Personalize"):
        state = read_chain_state(proj, setup.profile, setup.overrides)
        if not state.photos:
            raise InputError("The project has no photos yet: add photos of your concepts "
                             "first (mycanvas add-concept PROJECT NAME --class WORD PHOTOS...)")
        calibration = calibration_for(setup.device, setup.profile, log=ctx.log)
        timings = timings_for(setup.device)
        plan = personalize_plan(state, params, setup.device, setup.profile, calibration,
                                timings)
        missing = needed_missing(plan)
        if missing:
            problem = (f"Personalize needs the {', '.join(missing)} model(s) of profile "
                       f"{setup.profile.name}, which are not on this computer.")
            raise ModelMissingError(
                f"{problem[:-1]}: run `mycanvas models download {setup.profile.name}`, or set "
                "a folder per model in Settings", problem=problem, missing_role=missing[0],
                command=f"mycanvas models download {setup.profile.name}",
                hint="download them when connected to the internet, or choose the folder "
                     "that holds each")
        if plan.free_disk_bytes is not None and plan.disk_bytes > plan.free_disk_bytes:
            raise DiskFullError(
                f"Personalize needs about {format_bytes(plan.disk_bytes)} of disk at "
                f"{proj.root}, and {format_bytes(plan.free_disk_bytes)} is free: free some "
                "space, or choose a smaller preset")
        book = ChainBook.read(proj)
        settled = book.settled(proj)
        if settled != book:  # what a cut-short plan or run start left, taken in
            settled.write(proj)
        for line in plan_text(plan).splitlines():
            ctx.log(line)
        settings = settings_for(params, setup.profile.name, device_kind(setup.device))
        progress = ChainProgress(ctx, _weights(plan))
        progress.begin(plan.seconds, f"{sum(s.runs for s in plan.stages)} stage(s) to run")
        chain = _Chain(ctx, params, setup, proj, settings, plan, progress, calibration,
                       timings)
        chain.segment()
        chain.plan_layouts()
        chain.dataset()
        run_id = chain.train()
        chain.generate(run_id)
        chain.score()
        return _result(proj, params, setup, chain, run_id, time.monotonic() - began)


def _result(project: Project, params: PersonalizeParams, setup: StageSetup, chain: _Chain,
            run_id: int, seconds: float) -> Personalized:
    """The chain's live pictures (of its run) and their scores."""
    ours = set(read_chain_state(project).pictures)
    images = [g for g in project.gallery(run_id=run_id) if g.id in ours]
    scored = [g for g in images if g.scored]
    cps = [g.cp_clip for g in scored if g.cp_clip is not None]
    tis = [g.ti_clip for g in scored if g.ti_clip is not None]
    return Personalized(
        preset=params.preset, profile=setup.profile.name, stages=chain.outcomes,
        run_id=run_id, generation_ids=sorted(g.id for g in images), scored=len(scored),
        mean_cp_clip=sum(cps) / len(cps) if cps else None,
        mean_ti_clip=sum(tis) / len(tis) if tis else None,
        test_models=setup.profile.test_models, seconds=round(seconds, 1))
