"""Stand-ins for jobs whose real part cannot run in a test: the planner's GGUF model (minutes
on two cores) and a 6 GB model download. The worker process imports this module by name."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


class ScriptedPlannerModel:
    """Answers the planner's questions the way a well-behaved model would."""

    name = "scripted"

    def complete(self, prompt: str, *, max_tokens: int, seed: int, temperature: float,
                 should_stop: Any) -> str:
        if prompt.endswith("Scenes:"):
            return " a sunny garden; a cosy kitchen"
        if "Scene: " in prompt:
            scene = prompt.rsplit("Scene: ", 1)[1].split("\n")[0]
            return f" The objects stand together in {scene}."
        return ""


def scripted_plan_job(ctx: Any, params: Any) -> Any:
    """The real `plan` job (solver, checks, storage) with a scripted language model."""
    import engine.plan.planner as planner

    model = ScriptedPlannerModel()
    planner.resolve_planner_model = lambda setup, path=None, fmt=None: (
        Path("scripted.gguf"), "")
    planner.load_planner_model = lambda ctx, setup, path, fmt: model
    return planner.plan_job(ctx, params)


def slow_models_job(ctx: Any, params: Any, steps: int = 400) -> Any:
    """Reports download progress until cancelled (a real download is 6 GB)."""
    from engine.jobs.builtin import ModelsReady

    for step in range(steps):
        ctx.progress(step, steps, f"{(params.roles or ['base'])[0]}: {step} of {steps} MB")
        time.sleep(0.05)
    return ModelsReady({})


def shrinking_box_job(ctx: Any, params: Any) -> Any:
    """A segmenter's answer to a box that is worse than the mask it replaces: the left half of
    what the current mask had inside the box is gone (the issue's cat, boxed whole)."""
    from engine.masks import mask_png, read_mask
    from engine.project import Project
    from engine.segment.jobs import SegmentedPhotos

    prompt = params.prompts[0]
    with Project.open(params.project) as project:
        photo = project.photo(params.photo_id)
        concept = int(prompt["concept"])
        current = project.current_masks(concept)[photo.id]
        mask = read_mask(str(project.abspath(current.file)))
        x0, y0, x1, y1 = (round(v) for v in prompt["box"])
        mask[y0:y1, x0:(x0 + x1) // 2] = False
        new = project.add_mask(photo.id, concept, project.put_bytes(mask_png(mask), "png"),
                               "sam-refined", cutout_file=current.cutout_file)
    return SegmentedPhotos("stand-in", False, True, masks=[{
        "photo_id": photo.id, "concept_id": concept, "mask_id": new.id,
        "method": new.method, "area": float(mask.mean())}])


def offline_models_job(ctx: Any, params: Any) -> Any:
    """What the model job does offline: the first role to download fails with the engine's
    own message (engine.models.hub.download_role, no connection)."""
    from engine.errors import ModelMissingError
    from engine.models.profiles import get_profile, missing_fields, missing_message

    profile = get_profile(params.profile)
    role = (params.roles or list(profile.roles))[0]
    ctx.progress(0, 1, f"{role}: fetching")
    why = "no connection to the Hugging Face Hub"
    spec = profile.role(role)
    raise ModelMissingError(missing_message(profile, spec, why),
                            **missing_fields(profile, spec, why))


def personalize_trains_job(ctx: Any, params: Any) -> Any:
    """Personalize at its training stage: the real train job run inside it, as the chain
    runs it (engine.personalize.chain), on a long budget so it is still going when looked at."""
    from engine.train.jobs import TrainParams
    from engine.train.training_job import train_job

    return train_job(ctx, TrainParams(project=params.project, profile=params.profile,
                                      device=params.device,
                                      config={"steps": 400, "sample_every": 0}))
