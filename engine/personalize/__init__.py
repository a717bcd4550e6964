"""One-click Personalize: the whole pipeline as one resumable job, with a plan shown first.

    jobs.py       the `personalize` and `personalize-plan` jobs, their parameters and
                  results (Personalized, Plan, StagePlan, StageOutcome), declared once
    presets.py    quick / standard / best per model profile and kind of device
    costs.py      each stage's cost (seconds, bytes) per profile and device
    calibration.py  this machine's speed at convolutions, linear layers, attention and norms
    timings.py    what each stage took on this machine: its load, its work's scale
    work.py       how much of each one SD 1.5's model calls do
    state.py      what is done, read from the project; the little the chain notes itself
    planning.py   personalize_plan: stages, counts, time and disk, as a pure function
    progress.py   one bar across the stages in proportion to their planned seconds, with an
                  ETA at the pace observed
    chain.py      the job: each stage's job function run in-process, in order

Public API: the declarations and results above; `personalize_plan(state, params, device,
profile)`, `read_chain_state(project, profile, overrides)`, `plan_for(params)` (the plan
of a project as the job would see it), `format_bytes`, and this machine's speeds for the plans:
`calibrate_device(device_plan)`, `load_calibration(cpu_kind)` (calibration.py, work.py).
Importing this package is cheap.
"""

from typing import TYPE_CHECKING

from engine.lazy import lazy_exports
from engine.personalize.jobs import (
    PERSONALIZE,
    PERSONALIZE_PLAN,
    PRESETS,
    STAGES,
    Personalized,
    PersonalizeParams,
    Plan,
    StageOutcome,
    StagePlan,
)

_LAZY = {"personalize_plan": "engine.personalize.planning",
         "calibrate_device": "engine.personalize.calibration",
         "load_calibration": "engine.personalize.calibration",
         "format_bytes": "engine.personalize.planning",
         "plan_for": "engine.personalize.planning",
         "read_chain_state": "engine.personalize.state",
         "ChainState": "engine.personalize.state",
         "preset_settings": "engine.personalize.presets",
         "PresetSettings": "engine.personalize.presets"}


__getattr__ = lazy_exports(__name__, _LAZY)


if TYPE_CHECKING:
    from engine.personalize.calibration import calibrate_device, load_calibration
    from engine.personalize.planning import format_bytes, personalize_plan, plan_for
    from engine.personalize.presets import PresetSettings, preset_settings
    from engine.personalize.state import ChainState, read_chain_state

__all__ = ["PERSONALIZE", "PERSONALIZE_PLAN", "PRESETS", "STAGES", "ChainState",
           "PersonalizeParams", "Personalized", "Plan", "PresetSettings", "StageOutcome",
           "StagePlan", "calibrate_device", "format_bytes", "load_calibration",
           "personalize_plan", "plan_for", "preset_settings", "read_chain_state"]
