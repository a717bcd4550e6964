"""Planning: which concepts go together, in which scene, where each one stands.

    layout_solver.py   LayoutSolver: the geometry, always (size priors, relations, overlap
                       and occlusion limits, Gen4Gen's minimum sizes), seeded
    llm.py             the local GGUF's short answers (groups, scenes, captions, heights),
                       each checked, re-asked once, else a deterministic fallback
    answers.py         the parsers and checks of those answers; vocabulary and templates
    planner.py         LayoutPlanner and the `plan` job
    jobs.py            the `plan` job, declared once

Public API: `PLAN`, `PlanParams`, `PlannedLayouts`, and `LayoutSolver` for stages that place
boxes. Importing this package is cheap (llama.cpp is loaded by the job).
"""

from engine.plan.jobs import PLAN, PlannedLayouts, PlanParams

__all__ = ["PLAN", "PlanParams", "PlannedLayouts"]
