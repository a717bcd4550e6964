"""The personalize stage's jobs, declared once: the one-click chain, and its plan.

`personalize` runs what is still missing of segment → plan layouts → build the dataset →
train → generate → score; `personalize-plan` says what that would do (stages, counts,
estimated time, disk) without doing it. Both take the same parameters, so the window shows
the plan of exactly the job it will start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import InputError
from engine.jobs.declaration import JobDeclaration, JobResult, StageParams, param
from engine.score.jobs import SCORING_ROLES

PRESETS = ("quick", "standard", "best")


@dataclass(frozen=True)
class ChainStage:
    """One stage of the chain, declared once: the plan's rows, the progress bar's labels, the
    model check and the result's stage names all read CHAIN (engine/README.md, "Adding a
    stage", lists what else a stage inside the chain touches)."""

    name: str  # as in plans, progress messages and results
    title: str  # the plan's row, for people
    label: str  # the progress bar's short word
    roles: tuple[str, ...] = ()  # the models it loads
    optional_models: bool = False  # runs without them (a fallback), or is skipped

    @property
    def needed_roles(self) -> tuple[str, ...]:
        """The roles it cannot run without."""
        return () if self.optional_models else self.roles


# The chain's stages in order. Segmentation falls back to GrabCut without SAM; scoring is
# skipped without its models.
CHAIN = (
    ChainStage("segment", "Find the concepts in their photos", "Masks", ("segmenter",),
               optional_models=True),
    ChainStage("plan", "Plan layouts", "Layouts", ("planner",)),
    ChainStage("dataset", "Build the dataset", "Dataset", ("inpaint",)),
    ChainStage("train", "Train the concepts", "Training", ("base",)),
    ChainStage("generate", "Generate pictures from the layouts", "Pictures", ("base",)),
    ChainStage("score", "Score the pictures", "Scores", SCORING_ROLES, optional_models=True),
)
STAGES = tuple(stage.name for stage in CHAIN)
_BY_NAME = {stage.name: stage for stage in CHAIN}


def chain_stage(name: str) -> ChainStage:
    return _BY_NAME[name]


def chain_roles() -> tuple[str, ...]:
    """Every model role the chain may load, in the chain's order, once each."""
    return tuple(dict.fromkeys(role for stage in CHAIN for role in stage.roles))


@dataclass(frozen=True, kw_only=True)
class PersonalizeParams(StageParams):
    preset: str = param("quick", choices=PRESETS,
                        help="how much to make: quick, standard or best (counts and times "
                             "depend on the model profile and the device; --dry-run shows "
                             "them)")
    seed: int = param(0, minimum=0, maximum=2**31 - 1,
                      help="seed of the chain: layouts, dataset, training and pictures")
    layouts: int | None = param(None, minimum=1, maximum=1000,
                                help="layouts to have (default: the preset's)")
    items: int | None = param(None, minimum=1, maximum=10_000,
                              help="dataset items #0..N-1 to have (default: the preset's)")
    train_steps: int | None = param(None, minimum=1, maximum=100_000,
                                    help="training steps (default: the preset's)")
    pictures: int | None = param(None, minimum=1, maximum=1000,
                                 help="pictures to generate (default: the preset's)")
    resolution: int | None = param(None, minimum=64, maximum=4096,
                                   help="side in pixels of the dataset, training and pictures "
                                        "(a multiple of 64; default: the profile's)")

    def check(self) -> None:
        super().check()
        if self.resolution is not None and self.resolution % 64:
            raise InputError(f"resolution must be a multiple of 64, got {self.resolution}")


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class StagePlan:
    """One stage of a plan: what it will do now, and what is there already."""

    stage: str  # one of STAGES
    title: str  # for people: "Find the concepts in their photos"
    unit: str  # what `count`, `target` and `done` count: photos, layouts, items, steps, ...
    target: int  # how many the preset wants in all
    done: int  # how many are there already (kept as they are)
    count: int  # how many the stage makes now; 0: the stage is skipped
    seconds: float  # estimated seconds for `count` (model loading included)
    disk_bytes: int  # estimated bytes it writes
    note: str = ""  # why it is skipped, or what to know about it
    rebuilds: int = 0  # of `count`, how many replace what test models made (said in `note`)
    # Of `seconds`: those before its first unit of work (model loads), then each part of the
    # rest its job reports with a progress total of its own, in order (the bar's spans).
    load_seconds: float = 0.0
    parts: tuple[float, ...] = ()

    @property
    def runs(self) -> bool:
        return self.count > 0


@dataclass(frozen=True)
class Plan(JobResult):
    """What `personalize` would do now, with estimates. The window shows it before it
    starts; `mycanvas personalize --dry-run` prints its summary."""

    preset: str
    profile: str
    test_models: bool  # the profile's models are the tiny test models: pictures are noise
    device: str  # the device plan, for people: "cpu (float32 weights, bfloat16 compute ...)"
    device_kind: str  # what the presets and costs are chosen by: cpu, cpu-bf16 or gpu
    stages: list[StagePlan] = field(default_factory=list)
    seconds: float = 0.0  # estimated total
    disk_bytes: int = 0  # estimated total written
    free_disk_bytes: int | None = None  # free space where the project is
    estimate: str = ""  # where the figures come from: measured here, or an estimate
    measured: bool = False  # True when the per-stage costs were measured on such a device
    missing_models: list[str] = field(default_factory=list)  # roles to download first
    # About how much downloading the missing models takes (the profile table's figures:
    # half-precision files where the profile downloads those); None when not known.
    download_bytes: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # the preset's numbers, resolved

    @property
    def nothing_to_do(self) -> bool:
        return not any(s.runs for s in self.stages)

    def summary(self) -> str:
        from engine.personalize.planning import plan_text

        return plan_text(self)


# --------------------------------------------------------------------------- the chain


@dataclass(frozen=True)
class StageOutcome:
    stage: str  # one of STAGES
    state: str  # "done" (it ran now) or "skipped" (nothing to do)
    detail: str  # the stage's own summary, or why it was skipped
    seconds: float = 0.0


@dataclass(frozen=True)
class Personalized(JobResult):
    preset: str
    profile: str
    stages: list[StageOutcome] = field(default_factory=list)
    run_id: int | None = None  # the chain's training run
    generation_ids: list[int] = field(default_factory=list)  # the chain's pictures, all runs
    scored: int = 0  # of those, how many have scores
    mean_cp_clip: float | None = None  # over the chain's scored pictures
    mean_ti_clip: float | None = None
    test_models: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"{o.stage}: {o.detail}" if o.state == "done" else
                 f"{o.stage}: skipped ({o.detail})" for o in self.stages]
        scores = ", ".join(f"mean {name} {value:.3f}" for name, value in
                           (("CP-CLIP", self.mean_cp_clip), ("TI-CLIP", self.mean_ti_clip))
                           if value is not None)
        lines.append(f"Personalized ({self.preset}) in {self.seconds:.0f} s: run "
                     f"{self.run_id}, {len(self.generation_ids)} picture(s), {self.scored} "
                     f"scored{f' ({scores})' if scores else ''}."
                     + (" Test models: the pictures are noise." if self.test_models else ""))
        return "\n".join(lines)


PERSONALIZE = JobDeclaration(
    "personalize", "engine.personalize.chain:personalize_job", PersonalizeParams,
    Personalized, title=lambda p: f"Personalize ({p.preset})", resumable=True,
    continues_on=(),  # one chain per project: any run that finished completed it
    changes=("photos", "layouts", "dataset", "runs", "generations"),
    help="everything still missing, in one go: masks, layouts, dataset, training, "
         "pictures, scores")
PERSONALIZE_PLAN = JobDeclaration(
    "personalize-plan", "engine.personalize.planning:personalize_plan_job",
    PersonalizeParams, Plan, title=lambda p: f"Plan Personalize ({p.preset})",
    help="what personalize would do now: stages, counts, estimated time and disk")
JOBS = (PERSONALIZE, PERSONALIZE_PLAN)
