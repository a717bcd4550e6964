"""The `generate` job: pictures of a run's concepts, each stored with its recipe.

Order of work: everything the user gave is checked first (the run, the prompt and its
tokens, the layout or boxes, the sizes), so a bad input fails in a second with one line and
the project unchanged; then the base model is loaded (or found warm) and given the run's
concepts; then each picture is made and stored as soon as it is complete: the PNG (recipe in
its text chunk) into the project's files, then its catalogue row. A cancel stops the picture
being made at its next step; it is not stored, the pictures finished before it are.

Every picture of one job belongs to a batch (the job's id). Resuming the job (after a crash
or a quit) makes only the batch's missing pictures, with the same seeds; so does running the
same request again after its batch was cut short (`continued_batch`: a killed `mycanvas
generate -n 5` run again continues, nothing is made twice).

When the scoring models are here (engine.score.scoring_models_present), the job then scores
the batch's unscored pictures in a second phase (engine.score.score_pictures: the same
cancel, progress with its own total); else it logs one line saying why it did not.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from engine.errors import InputError

if TYPE_CHECKING:
    from engine.generate.concepts import ConceptInfo, RunConcepts
    from engine.generate.jobs import GeneratedImages, GenerateParams
    from engine.generate.recipe import LayoutSpec, Recipe
    from engine.generate.sampler import GenerationModel
    from engine.jobs import JobContext
    from engine.project import Project

CPU_STEPS, ACCELERATOR_STEPS = 20, 30


@dataclass(frozen=True)
class Request:
    """What to make, checked, before any model is loaded."""

    run: RunConcepts
    prompt: str
    layout: LayoutSpec | None
    seeds: list[int]
    recipe: Recipe | None  # making a stored recipe again


def _layout_concepts(project: Project, run: RunConcepts,
                     layout_id: int) -> list[tuple[ConceptInfo, tuple[float, ...]]]:
    layout = project.layout(layout_id)
    placed: list[tuple[ConceptInfo, tuple[float, ...]]] = []
    for obj in layout.objects:
        token = project.concept(obj.concept_id).token
        concept = next((c for c in run.concepts if c.token == token), None)
        if concept is None:
            raise InputError(f"Layout {layout_id} places {token}, which run {run.run_id} did "
                             "not learn")
        placed.append((concept, (obj.x, obj.y, obj.w, obj.h)))
    if not placed:
        raise InputError(f"Layout {layout_id} places no concepts")
    return placed


def _prompt_and_layout(project: Project, run: RunConcepts,
                       params: GenerateParams) -> tuple[str, LayoutSpec | None]:
    from engine.generate.prompts import check_prompt, prompt_for_concepts
    from engine.generate.recipe import LayoutBox, LayoutSpec

    boxes: list[LayoutBox] = []
    prompt = params.prompt
    if params.layout_id is not None:
        placed = _layout_concepts(project, run, params.layout_id)
        boxes = [LayoutBox(c.token, *box) for c, box in placed]
        if prompt is None and params.concepts is None:
            unique = list(dict.fromkeys(c for c, _box in placed))
            scene = params.scene or project.layout(params.layout_id).scene
            prompt = prompt_for_concepts(run, unique, scene)
    if params.concepts is not None:
        prompt = prompt_for_concepts(run, [run.concept(c) for c in params.concepts],
                                     params.scene)
    if prompt is None:
        raise InputError("Give a prompt, concepts with a scene, or a layout")
    prompt = check_prompt(prompt, run)
    for name, corners in (params.boxes or {}).items():
        boxes.append(LayoutBox.from_corners(run.concept(name).token, corners))
    if not boxes:
        return prompt, None
    layout = LayoutSpec(tuple(boxes), params.layout_strength, params.guided_fraction,
                        params.layout_id)
    _check_boxes(prompt, layout)
    return prompt, layout


def _check_boxes(prompt: str, layout: LayoutSpec | None) -> None:
    for box in layout.boxes if layout is not None else ():
        if box.token not in prompt:
            raise InputError(f"A box places {box.token}, but the prompt does not name it")


def plan_request(project: Project, params: GenerateParams) -> Request:
    """The run, prompt, layout and seeds of a job; InputError (one line) if any is unusable."""
    from engine.generate.concepts import load_run_concepts, newest_finished_run
    from engine.generate.prompts import check_prompt
    from engine.generate.recipe import Recipe

    if params.recipe is not None:
        recipe = Recipe.from_dict(params.recipe, "the recipe")
        _check_scheduler(recipe.scheduler)
        run = load_run_concepts(project, recipe.run_id)
        _check_profile(run, params.profile or recipe.profile)
        _check_boxes(check_prompt(recipe.prompt, run), recipe.layout)
        return Request(run, recipe.prompt, recipe.layout, [recipe.seed], recipe)
    run_id = params.run_id if params.run_id is not None else newest_finished_run(project)
    run = load_run_concepts(project, run_id)
    _check_profile(run, params.profile)
    prompt, layout = _prompt_and_layout(project, run, params)
    if params.seeds is not None:
        seeds = list(params.seeds)
    else:
        first = params.seed if params.seed is not None else secrets.randbelow(2**32)
        seeds = [first + k for k in range(params.count)]
    return Request(run, prompt, layout, seeds, None)


def _check_scheduler(name: str) -> None:
    """A recipe's scheduler is one of ours or a model's own (recorded by its class name):
    anything else is refused here, before the base model is loaded."""
    from engine.generate.sampler import SCHEDULERS

    if name == "default" or name in SCHEDULERS or name in SCHEDULERS.values() or \
            re.fullmatch(r"[A-Z][A-Za-z0-9]*Scheduler", name):
        return
    raise InputError(f"the recipe: unknown scheduler {name!r} (known: "
                     f"{', '.join(SCHEDULERS)})")


def _check_profile(run: RunConcepts, profile: str | None) -> None:
    if profile and profile != run.profile:
        raise InputError(f"Run {run.run_id} was trained on profile {run.profile!r}; it cannot "
                         f"generate with profile {profile!r}")


def _recipes(model: GenerationModel, request: Request, params: GenerateParams,
             resolution: int, ctx: JobContext) -> list[Recipe]:
    from engine import __version__
    from engine.generate.recipe import Recipe

    made_now: dict[str, Any] = {
        "precision": model.precision.describe(), "device": model.plan.device,
        "app_version": __version__, "model": model.info, "run_fingerprint": request.run.fingerprint}
    if request.recipe is not None:
        old = request.recipe
        if old.run_fingerprint != request.run.fingerprint:
            ctx.log(f"Run {old.run_id}'s concepts changed since this recipe was made (it was "
                    "trained further?): the picture will differ", "warning")
        if old.model.get("fingerprint") != model.info["fingerprint"]:
            ctx.log("The base model differs from the recipe's: the picture will differ",
                    "warning")
        if (old.device, old.precision) != (model.plan.device, model.precision.describe()):
            ctx.log(f"The recipe was made on {old.device} ({old.precision}); on "
                    f"{model.plan.device} ({model.precision.describe()}) it matches only to "
                    "float rounding")
        return [replace(old, **made_now)]
    steps = params.steps or (CPU_STEPS if model.plan.device == "cpu" else ACCELERATOR_STEPS)
    assert request.run.run_id is not None
    return [Recipe(run_id=request.run.run_id, run_kind=request.run.kind,
                   profile=request.run.profile, prompt=request.prompt,
                   negative_prompt=" ".join(params.negative.split()), seed=seed, steps=steps,
                   guidance=params.guidance, width=params.width or resolution,
                   height=params.height or resolution,
                   scheduler=model.scheduler_name(params.scheduler), layout=request.layout,
                   **made_now) for seed in request.seeds]


def _made_before(project: Project, run_id: int, batch: str) -> set[int]:
    return {g.settings["index"] for g in project.generations(run_id)
            if g.settings.get("batch") == batch and isinstance(g.settings.get("index"), int)}


def continued_batch(project: Project, params: GenerateParams) -> GenerateParams:
    """The same request again after its batch was cut short (a killed command line, a closed
    window) continues that batch: its batch id and first seed from the job journal, so only
    its missing pictures are made, with their seeds, and the whole batch is scored."""
    import json

    if params.batch is not None or params.recipe is not None:
        return params
    mine = json.loads(json.dumps(params.to_dict()))  # as the journal stored it
    for entry in reversed(project.interrupted_jobs()):
        batch = entry.resume.get("batch")
        if entry.name != "generate" or entry.params != mine or not isinstance(batch, str):
            continue
        seed = entry.resume.get("seed")
        if params.seed is None and params.seeds is None and isinstance(seed, int):
            return replace(params, batch=batch, seed=seed)
        return replace(params, batch=batch)
    return params


def generate_job(ctx: JobContext, params: GenerateParams) -> GeneratedImages:
    """Job: make the pictures `params` asks for; returns their generation ids."""
    from engine.generate.jobs import GeneratedImages
    from engine.generate.sampler import load_generation_model
    from engine.jobs.stage_setup import resolve_stage
    from engine.project import Project

    with Project.open(params.project) as project:
        params = continued_batch(project, params)
        request = plan_request(project, params)
        run = request.run
        assert run.run_id is not None
        setup = resolve_stage(replace(params, profile=run.profile))
        batch = params.batch or ctx.job_id
        project.journal_note_resume(ctx.job_id, batch=batch, run_id=run.run_id,
                                    **({"seed": request.seeds[0]} if params.seeds is None
                                       and params.recipe is None else {}))
        ctx.progress(0, len(request.seeds), "loading the base model")
        model = load_generation_model(ctx, setup)
        if model.use_run(run):
            ctx.log(f"Loaded the concepts of {run.describe()}")
        recipes = _recipes(model, request, params, setup.profile.resolution, ctx)
        done = _made_before(project, run.run_id, batch)
        todo = [(i, r) for i, r in enumerate(recipes) if i not in done]
        made = _make(ctx, project, model, todo, batch, params.preview_every)
        _score_batch(ctx, project, params, run.run_id, run.profile, batch)
    return GeneratedImages(run_id=run.run_id, generation_ids=[g for g, _f in made],
                           image_files=[f for _g, f in made], seeds=[r.seed for _i, r in todo],
                           prompt=request.prompt, batch=batch, already=len(done))


def _make(ctx: JobContext, project: Project, model: GenerationModel,
          todo: list[tuple[int, Recipe]], batch: str, preview_every: int
          ) -> list[tuple[int, str]]:
    """Make and store each picture; progress counts denoising steps over all of them."""
    from engine.generate.preview import latent_preview
    from engine.masks import png_bytes
    from engine.project import Generation

    if not todo:
        return []
    per_image = model.calls_per_image(todo[0][1])
    total = per_image * len(todo)
    made: list[tuple[int, str]] = []
    for k, (index, recipe) in enumerate(todo):
        label = f"picture {k + 1}/{len(todo)}"
        ctx.progress(k * per_image, total, label)  # a boundary: cancel between pictures

        def on_step(step: int, steps: int, k: int = k, label: str = label) -> None:
            ctx.progress(k * per_image + min(step, per_image), total,
                         f"{label}, step {step}/{steps}")

        def on_latents(step: int, latents: Any, label: str = label) -> None:
            if preview_every and step % preview_every == 0 and step < per_image:
                image = latent_preview(latents)
                if image is not None:
                    ctx.preview(image, f"{label}, step {step}")

        image = model.generate(recipe, on_step, ctx.check_cancelled, on_latents)
        rel = project.put_bytes(png_bytes(image, recipe.png_text()), "png")
        row = project.add_generation(Generation(
            prompt=recipe.prompt, seed=recipe.seed, run_id=recipe.run_id, image_file=rel,
            settings={**recipe.to_dict(), "batch": batch, "index": index}))
        assert row.id is not None
        made.append((row.id, rel))
        ctx.preview(image, f"{label} done")
    ctx.progress(total, total, f"{len(made)} picture(s) made")
    return made


def _score_batch(ctx: JobContext, project: Project, params: GenerateParams, run_id: int,
                 profile: str, batch: str) -> None:
    """Score the batch's pictures that have no scores yet (made now, or before a cancel)
    when the scoring models are here: a second phase of this job, with its own progress
    total, under the same cancel. Else one line says why they were not scored."""
    from engine.errors import MyCanvasError
    from engine.jobs import EtaEstimator, StageContext
    from engine.score import ScoreParams, score_pictures, scoring_models_present

    ids = [int(g.id or 0) for g in project.generations(run_id)
           if g.settings.get("batch") == batch]
    if not ids or not project.generations_to_score(run_id, ids):
        return
    if not scoring_models_present(profile, params.overrides):
        ctx.log(f"Scoring skipped: the scoring models (CLIP, OWL-ViT) of profile {profile} are "
                "not on this computer; `mycanvas score` scores these pictures once they are")
        return
    eta = EtaEstimator()

    def on_progress(step: int, total: int, message: str) -> None:
        ctx.progress_with_eta(step, total, eta.update(step, total), f"scoring: {message}")

    try:
        scored = score_pictures(StageContext(ctx, "score", on_progress), ScoreParams(
            project=params.project, profile=profile, device=params.device,
            overrides=params.overrides, generation_ids=ids))
    except MyCanvasError as exc:  # the pictures are stored; `mycanvas score` can try again
        ctx.log(f"Scoring failed: {exc}", "warning")
        return
    ctx.log(scored.summary())
