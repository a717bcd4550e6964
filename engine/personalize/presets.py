"""Presets: how much the chain makes, per model profile and kind of device.

The counts differ by device because the time does: on a CPU, SD 1.5 takes minutes per
dataset item and tens of seconds per training step, so its presets are small; a GPU does
the same work in seconds, so its presets follow the papers more closely (Custom Diffusion
trains ~250 steps per concept, 500 for several concepts; Gen4Gen inpaints with ~60 steps).
The tiny profile's models are random test models: its presets only have to exercise every
stage quickly (the end-to-end test runs `quick`).

Kinds of device (`device_kind`): "cpu" (float32), "cpu-bf16" (a CPU whose bf16 units the
device plan uses: the same counts as "cpu", less time) and "gpu" (CUDA or Apple MPS).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from engine.errors import InputError

if TYPE_CHECKING:
    from engine.device import DevicePlan
    from engine.personalize.jobs import PersonalizeParams

DEVICE_KINDS = ("cpu", "cpu-bf16", "gpu")


@dataclass(frozen=True)
class PresetSettings:
    layouts: int  # layouts the project should have
    items: int  # dataset items #0..N-1
    dataset_steps: int  # inpainting steps asked for (the pipeline runs steps × 0.9 of them)
    train_steps: int
    pictures: int  # pictures generated from the layouts
    picture_steps: int  # denoising steps per picture
    sample_every: int = 0  # a training preview every this many steps (0: none)
    sample_steps: int = 10  # denoising steps of a training preview
    resolution: int | None = None  # side in pixels; None: the model profile's

    @property
    def checkpoint_every(self) -> int:
        """Five checkpoints per run: a kill loses at most a fifth of the training."""
        return max(1, self.train_steps // 5)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "checkpoint_every": self.checkpoint_every}


def _presets(quick: PresetSettings, standard: PresetSettings,
             best: PresetSettings) -> dict[str, PresetSettings]:
    return {"quick": quick, "standard": standard, "best": best}


_TINY = _presets(
    PresetSettings(layouts=3, items=6, dataset_steps=8, train_steps=30, pictures=3,
                   picture_steps=8, sample_every=15, sample_steps=4),
    PresetSettings(layouts=6, items=12, dataset_steps=20, train_steps=100, pictures=6,
                   picture_steps=20, sample_every=50, sample_steps=10),
    PresetSettings(layouts=8, items=24, dataset_steps=20, train_steps=300, pictures=12,
                   picture_steps=20, sample_every=100, sample_steps=10),
)
# SD 1.5 on a CPU: no training previews (each costs as much as a picture: minutes).
_SD15_CPU = _presets(
    PresetSettings(layouts=4, items=8, dataset_steps=12, train_steps=100, pictures=4,
                   picture_steps=20),
    PresetSettings(layouts=6, items=16, dataset_steps=20, train_steps=250, pictures=6,
                   picture_steps=25),
    PresetSettings(layouts=8, items=24, dataset_steps=20, train_steps=500, pictures=8,
                   picture_steps=30),
)
_SD15_GPU = _presets(
    PresetSettings(layouts=6, items=16, dataset_steps=30, train_steps=250, pictures=8,
                   picture_steps=30, sample_every=125, sample_steps=25),
    PresetSettings(layouts=8, items=32, dataset_steps=60, train_steps=500, pictures=12,
                   picture_steps=30, sample_every=250, sample_steps=25),
    PresetSettings(layouts=12, items=64, dataset_steps=60, train_steps=800, pictures=20,
                   picture_steps=50, sample_every=200, sample_steps=25),
)
TABLE: dict[str, dict[str, dict[str, PresetSettings]]] = {
    "tiny": {"cpu": _TINY, "cpu-bf16": _TINY, "gpu": _TINY},
    "sd15": {"cpu": _SD15_CPU, "cpu-bf16": _SD15_CPU, "gpu": _SD15_GPU},
}
# A profile without its own row (one added later) is planned like SD 1.5.
FALLBACK_PROFILE = "sd15"


def device_kind(plan: DevicePlan) -> str:
    if plan.device == "cpu":
        return "cpu-bf16" if plan.autocast_dtype == "bfloat16" else "cpu"
    return "gpu"


def preset_settings(profile: str, kind: str, preset: str) -> PresetSettings:
    if kind not in DEVICE_KINDS:
        raise InputError(f"device kind must be one of {', '.join(DEVICE_KINDS)}, got {kind!r}")
    presets = TABLE.get(profile, TABLE[FALLBACK_PROFILE])[kind]
    if preset not in presets:
        raise InputError(f"preset must be one of {', '.join(presets)}, got {preset!r}")
    return presets[preset]


def settings_for(params: PersonalizeParams, profile: str, kind: str) -> PresetSettings:
    """The preset's settings with the counts the parameters override."""
    base = preset_settings(profile, kind, params.preset)
    changes = {name: value for name, value in (
        ("layouts", params.layouts), ("items", params.items),
        ("train_steps", params.train_steps), ("pictures", params.pictures),
        ("resolution", params.resolution))
        if value is not None}
    return replace(base, **changes)
