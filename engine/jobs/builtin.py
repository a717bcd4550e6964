"""The engine's own jobs, beside the stages': detect the device, make models present, repair a
project. Declarations here; the work is done by the device policy, the model store and the
project store they call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.device import PRECISIONS
from engine.jobs.declaration import JobDeclaration, JobParams, JobResult, ProjectParams, param


@dataclass(frozen=True, kw_only=True)
class DeviceInfoParams(JobParams):
    requested: str = param("auto", help="auto, cuda, cuda:N, mps or cpu")
    precision: str | None = param(None, choices=PRECISIONS,
                                  help="auto or float32 (default: the user's setting)")


@dataclass(frozen=True)
class DeviceInfo(JobResult):
    description: str
    float32_cost: str = ""  # what the precision "float32" costs here (device.float32_cost)

    def summary(self) -> str:
        return self.description

    def __str__(self) -> str:
        return self.description


def device_info_job(ctx: Any, params: DeviceInfoParams) -> DeviceInfo:
    """The device plan, described (the window runs it in the worker: it never loads torch)."""
    from engine.device import float32_cost, plan_device
    from engine.settings import load_settings

    ctx.progress(0, 1, "detecting device")
    precision = params.precision or load_settings().precision
    auto = plan_device(params.requested, precision="auto")
    return DeviceInfo(plan_device(params.requested, precision=precision).describe(),
                      float32_cost(auto))


@dataclass(frozen=True, kw_only=True)
class EnsureModelsParams(JobParams):
    profile: str | None = param(None, positional=True,
                                help="profile to make present (default: the settings' one)")
    roles: list[str] | None = param(None, flag="--role", help="only these roles")
    overrides: dict[str, str] | None = param(None, cli=False, help="a folder per role")


@dataclass(frozen=True)
class ModelsReady(JobResult):
    paths: dict[str, str] = field(default_factory=dict)  # role -> where its weights are

    def summary(self) -> str:
        return "\n".join(f"{role:<10} {path}" for role, path in self.paths.items())


def ensure_models_job(ctx: Any, params: EnsureModelsParams) -> ModelsReady:
    from engine.models.ensure import ensure_models

    return ModelsReady(ensure_models(ctx, params.profile, params.roles, params.overrides))


@dataclass(frozen=True, kw_only=True)
class RepairParams(ProjectParams):
    dry_run: bool = param(False, help="report what would be recovered; write nothing")
    force: bool = param(False, help="rebuild even a catalogue that passes its checks")


def repair_project_job(ctx: Any, params: RepairParams) -> Any:
    from engine.project.repair import repair_project

    ctx.progress(0, 1, "Reading what is left of the catalogue")
    report = repair_project(params.project, dry_run=params.dry_run, force=params.force)
    ctx.progress(1, 1, "Done")
    return report


DEVICE_INFO = JobDeclaration("device-info", "engine.jobs.builtin:device_info_job",
                             DeviceInfoParams, DeviceInfo, title="Detect the device")
ENSURE_MODELS = JobDeclaration(
    "ensure-models", "engine.jobs.builtin:ensure_models_job", EnsureModelsParams, ModelsReady,
    title=lambda p: f"Get the models of {p.profile or 'the profile'}",
    help="make a profile's models present (download or build)")
REPAIR_PROJECT = JobDeclaration(
    "repair-project", "engine.jobs.builtin:repair_project_job", RepairParams, None,
    title="Repair the project", help="rebuild a damaged project catalogue from what can be read")
JOBS = (DEVICE_INFO, ENSURE_MODELS, REPAIR_PROJECT)
