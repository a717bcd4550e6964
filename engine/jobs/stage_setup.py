"""One way for every job to learn its profile, device and model overrides.

An explicit parameter wins, then the user's settings, then the profile table's default. The
settings are read once per job and never changed by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from engine.jobs.warm_cache import ModelKey

if TYPE_CHECKING:
    from engine.device import DevicePlan
    from engine.models.profiles import Profile
    from engine.settings import Settings


@dataclass(frozen=True)
class StageSetup:
    profile: Profile
    overrides: dict[str, str]
    settings: Settings
    device: DevicePlan | None = None  # None for jobs that choose no device (the planner)

    @property
    def device_name(self) -> str:
        return self.device.device if self.device is not None else "cpu"

    def model_key(self, role: str, variant: str = "", autocast: bool = False) -> ModelKey:
        """The warm-cache key of this job's model for `role`; `autocast`: the model runs
        under the device plan's autocast, whose dtype is then part of the key."""
        dtype = self.device.dtype if self.device is not None else "float32"
        compute = (self.device.autocast_dtype or "") if autocast and self.device else ""
        return ModelKey(role, self.profile.name, self.device_name, dtype, variant, compute)

    def role_path(self, role: str) -> Path:
        """Where the weights of `role` are (ModelMissingError, with how to get them, if not)."""
        from engine.models.profiles import resolve_role

        return resolve_role(self.profile, role, self.overrides)


class ModelChoice(Protocol):
    """What a job's parameters say about its models (ModelParams; a job without a project,
    like preparing OpenVINO, declares the same fields)."""

    @property
    def profile(self) -> str | None: ...

    @property
    def overrides(self) -> dict[str, str] | None: ...


def resolve_stage(params: ModelChoice, settings: Settings | None = None) -> StageSetup:
    """The job's profile, model overrides and (for a job that declares `device`) device plan."""
    from engine.models.profiles import get_profile
    from engine.settings import load_settings

    settings = settings if settings is not None else load_settings()
    profile = get_profile(params.profile or settings.profile or None)
    overrides = dict(settings.role_overrides if params.overrides is None else params.overrides)
    device = None
    if hasattr(params, "device"):  # StageParams, or a job that declares the same field
        from engine.device import plan_device

        device = plan_device(getattr(params, "device", None) or settings.device,
                             precision=settings.precision)
    return StageSetup(profile, overrides, settings, device)
