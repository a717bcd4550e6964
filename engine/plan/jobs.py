"""The planning stage's job, declared once: plan layouts with the local LLM and the solver."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.jobs.declaration import JobDeclaration, JobResult, ModelParams, param

MAX_COUNT = 10_000


@dataclass(frozen=True, kw_only=True)
class PlanParams(ModelParams):
    """No device: the planner's LLM runs on the CPU through llama.cpp."""

    count: int = param(8, minimum=1, maximum=MAX_COUNT, help="how many layouts")
    seed: int | None = param(None, minimum=0, help="seed of the first layout "
                                                   "(default: random)")
    concepts: list[str] | None = param(None, help="concept names to plan with "
                                                  "(default: all)")
    max_iou: float = param(0.1, minimum=0.0, maximum=0.99,
                           help="largest overlap allowed between two boxes")
    model_path: str | None = param(None, cli=False, help="a GGUF planner model "
                                                        "(default: the settings' one)")
    chat_format: str | None = param(None, cli=False, help="its llama.cpp chat format")


@dataclass(frozen=True)
class PlannedLayouts(JobResult):
    layout_ids: list[int] = field(default_factory=list)
    seed: int = 0
    model: str = ""
    llm_without_fallback: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"Planned {len(self.layout_ids)} layout(s) with {self.model} in "
                f"{self.seconds} s (seed {self.seed}; {self.llm_without_fallback} fully from "
                "the LLM).")


PLAN = JobDeclaration(
    "plan", "engine.plan.planner:plan_job", PlanParams, PlannedLayouts,
    title=lambda p: f"Plan {p.count} layout{'' if p.count == 1 else 's'}",
    changes=("layouts",),
    help="plan layouts: scenes and captions from the local LLM, boxes from a solver")
JOBS = (PLAN,)
