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
