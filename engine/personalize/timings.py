"""What this machine's finished stages took: the part of each stage's cost that no model of the
work can see, learned from the chain's own runs, for every profile (the tiny one too).

Each stage the chain runs is timed in two parts: its **load** (from the stage's start to its
first unit of work reported: imports, model loads, caches) and its **work** (the rest). The
next plan takes the load as measured and multiplies the cost table's per-unit and per-step
figures by the stage's **scale** (measured work / modelled work). The first run of a stage on
this machine is taken as it is; later runs move the figures halfway (the scale in log space),
so one run slowed by other programs does not throw the plan off. Stored per machine (CPU,
thread count, torch) and cost table (costs.cost_model_digest) in the app's data folder:
another machine, or another version of the cost table, starts from the table.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.atomic import atomic_write_text
from engine.personalize.jobs import STAGES

if TYPE_CHECKING:
    from engine.personalize.costs import CostTable, StageCost

FORMAT = 1
SCALE_BOUNDS = (0.02, 50.0)  # beyond this the measurement is wrong, not the model
WEIGHT = 0.5  # how far a later run moves the figures (the scale in log space)
MIN_WORK = 0.2  # seconds: a stage's work shorter than this says nothing about its scale


def timings_path() -> Path:
    from engine.paths import data_dir

    return data_dir() / "stage_timings.json"


@dataclass(frozen=True)
class StageTiming:
    load: float  # seconds before the stage's first unit of work
    scale: float  # measured work / the cost table's work
    runs: int = 1


@dataclass
class StageTimings:
    machine: dict[str, Any]
    costs: str  # the digest of the cost table the scales are relative to
    stages: dict[str, StageTiming] = field(default_factory=dict)  # "profile/kind/stage"

    def get(self, profile: str, kind: str, stage: str) -> StageTiming | None:
        return self.stages.get(f"{profile}/{kind}/{stage}")

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "machine": self.machine, "costs": self.costs,
                "stages": {k: {"load": v.load, "scale": v.scale, "runs": v.runs}
                           for k, v in self.stages.items()}}


def load_timings(cpu_kind: str, path: Path | None = None) -> StageTimings:
    """This machine's stage timings; empty when there are none for it (another CPU, thread
    count, torch or cost table wrote the file, or it cannot be read: the next finished stage
    rewrites it)."""
    from engine.personalize.calibration import machine_key
    from engine.personalize.costs import cost_model_digest

    machine, costs = machine_key(cpu_kind), cost_model_digest()
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
        raw = json.loads((path or timings_path()).read_text(encoding="utf-8"))
        if raw.get("format") == FORMAT and raw.get("machine") == machine and \
                raw.get("costs") == costs:
            stages = {str(k): StageTiming(max(0.0, float(v["load"])),
                                          _bounded(float(v["scale"])), int(v.get("runs", 1)))
                      for k, v in dict(raw["stages"]).items()}
            return StageTimings(machine, costs, stages)
    return StageTimings(machine, costs)


def _bounded(scale: float) -> float:
    if not math.isfinite(scale):
        return 1.0
    return min(max(scale, SCALE_BOUNDS[0]), SCALE_BOUNDS[1])


def record_stage(timings: StageTimings, profile: str, kind: str, stage: str, *,
                 planned_load: float, planned: float, load: float, took: float,
                 path: Path | None = None) -> StageTiming:
    """A finished stage: it took `took` seconds, `load` of them before its first unit, where
    the plan said `planned` (`planned_load` before its first unit). Returns and stores what
    the next plan uses."""
    key = f"{profile}/{kind}/{stage}"
    old = timings.stages.get(key)
    old_scale = old.scale if old else 1.0
    load = min(max(0.0, load), took)
    planned_work, work = planned - planned_load, took - load
    scale = old_scale
    if planned_work > 1e-6 and work >= MIN_WORK:
        scale = _bounded(old_scale * work / planned_work)
    if old is None:
        new = StageTiming(round(load, 3), round(scale, 4))
    else:
        mixed = math.exp((1 - WEIGHT) * math.log(old.scale) + WEIGHT * math.log(scale))
        new = StageTiming(round((1 - WEIGHT) * old.load + WEIGHT * load, 3),
                          round(_bounded(mixed), 4), old.runs + 1)
    timings.stages[key] = new
    target = path or timings_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(timings.to_dict(), indent=2))
    return new


def refined(table: CostTable, timings: StageTimings | None, profile: str,
            kind: str) -> CostTable:
    """`table` with each stage this machine has timed: its measured load, its per-unit and
    per-step figures times its scale."""
    if timings is None:
        return table
    changes: dict[str, Any] = {}
    taught = 0

    def learned(stage: str, cost: StageCost) -> StageCost:
        nonlocal taught
        got = timings.get(profile, kind, stage)
        if got is None:
            return cost
        taught += 1
        return replace(cost, load=got.load, per_unit=cost.per_unit * got.scale,
                       per_step=cost.per_step * got.scale)

    for stage in STAGES:
        changes[stage] = learned(stage, getattr(table, stage))
    train = timings.get(profile, kind, "train")
    if train is not None:  # the latent cache and the previews are the train stage's work too
        changes["train_cache_per_item"] = table.train_cache_per_item * train.scale
        changes["train_sample"] = replace(
            table.train_sample, per_unit=table.train_sample.per_unit * train.scale,
            per_step=table.train_sample.per_step * train.scale)
    if not taught:
        return table
    return replace(table, **changes, source=f"{table.source}; refined by what {taught} "
                                            "stage(s) took on this computer")
