"""ExtractConfig: the settings of one EM extraction run, validated, JSON round-trippable.

Where the paper (arXiv 2402.11487) gives no number, the defaults are ours or Break-A-Scene's,
and each says which:

* steps 400, phase one (tokens only) the first half: Break-A-Scene trains 400 + 400 steps;
  we spend the same budget on both phases together, as a CPU run is long already.
* token_learning_rate 5e-4 (Break-A-Scene's phase one); weights_learning_rate 1e-5 for the
  tokens and the cross-attention k/v in phase two (Custom Diffusion's k/v rate: Break-A-Scene's
  2e-6 is for the whole UNet, ours trains only k/v, like the fine-tuning stage).
* attention_loss_weight λ = 1e-2 (Break-A-Scene).
* iterations 4: an E-step after every quarter of the steps, the last one after the final
  step, so the stored masks are those of the final tokens. Ours.
* mask_threshold 0.5, mask_blend 0.7, converge_iou 0.95, the E-step's noise levels
  (200, 400, 600 of 1000): ours, see engine.extract.estep for why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from engine.checks import check_number, check_whole
from engine.errors import InputError

MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
MAX_STEPS = 1_000_000


@dataclass(frozen=True)
class ExtractConfig:
    # --- the schedule
    steps: int = 400  # optimiser steps in all (the budget); fewer when the masks converge
    iterations: int = 4  # E-steps: one after every steps/iterations optimiser steps
    phase_one_steps: int | None = None  # tokens only; None: half the steps
    # --- optimisation
    token_learning_rate: float = 5e-4  # phase one
    weights_learning_rate: float = 1e-5  # phase two: the tokens and the k/v weights
    weight_decay: float = 1e-2  # on the k/v weights only
    max_grad_norm: float = 1.0
    attention_loss_weight: float = 1e-2
    seed: int = 0
    # --- data
    resolution: int | None = None  # None: the model profile's resolution
    hflip: bool = True  # the photo and its masks are mirrored together at random
    background_token: bool = False  # also learn a token for what is no concept
    # --- the E-step (engine.extract.estep)
    estep_timesteps: tuple[int, ...] = (200, 400, 600)
    mask_threshold: float = 0.5
    mask_blend: float = 0.7  # weight of the new estimate against the previous mask
    converge_iou: float = 0.95
    crf_iterations: int = 5
    # --- speed and memory
    mixed_precision: str = "auto"
    gradient_checkpointing: bool = False
    # --- the run
    checkpoint_every: int = 50
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        check_whole("steps", self.steps, 1, MAX_STEPS)
        check_whole("iterations", self.iterations, 1, self.steps)
        if self.phase_one_steps is not None:
            check_whole("phase_one_steps", self.phase_one_steps, 0, self.steps)
        check_number("token_learning_rate", self.token_learning_rate, 0.0, 1.0, low_open=True)
        check_number("weights_learning_rate", self.weights_learning_rate, 0.0, 1.0, low_open=True)
        check_number("weight_decay", self.weight_decay, 0.0, 1.0)
        check_number("max_grad_norm", self.max_grad_norm, 0.0, 1e6)
        check_number("attention_loss_weight", self.attention_loss_weight, 0.0, 100.0)
        check_whole("seed", self.seed, 0, 2**63 - 1)
        if self.resolution is not None:
            check_whole("resolution", self.resolution, 64, 4096)
            if self.resolution % 64:
                raise InputError(f"resolution must be a multiple of 64, got {self.resolution}")
        steps = tuple(self.estep_timesteps) if isinstance(self.estep_timesteps, (list, tuple)) \
            else ()
        if not steps:
            raise InputError("estep_timesteps must be a list of 1 to 8 timesteps")
        for t in steps:
            check_whole("estep_timesteps", t, 0, 999)
        if len(steps) > 8:
            raise InputError("estep_timesteps must be a list of 1 to 8 timesteps")
        object.__setattr__(self, "estep_timesteps", steps)
        check_number("mask_threshold", self.mask_threshold, 0.0, 1.0, low_open=True)
        check_number("mask_blend", self.mask_blend, 0.0, 1.0, low_open=True)
        check_number("converge_iou", self.converge_iou, 0.0, 1.0)
        check_whole("crf_iterations", self.crf_iterations, 0, 50)
        if self.mixed_precision not in MIXED_PRECISION:
            raise InputError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}; "
                             f"got {self.mixed_precision!r}")
        check_whole("checkpoint_every", self.checkpoint_every, 1, MAX_STEPS)
        check_whole("keep_checkpoints", self.keep_checkpoints, 1, 100)
        for name in ("hflip", "background_token", "gradient_checkpointing"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def phase_two_from(self) -> int:
        """The first step (0-based) of phase two."""
        return self.steps // 2 if self.phase_one_steps is None else self.phase_one_steps

    def iteration_ends(self) -> list[int]:
        """After how many steps each E-step runs: evenly spread, the last at `steps`."""
        return [math.ceil((i + 1) * self.steps / self.iterations)
                for i in range(self.iterations)]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["estep_timesteps"] = list(self.estep_timesteps)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ExtractConfig:
        """A config from JSON values; unknown keys are refused by name."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"Unknown extraction setting(s): {', '.join(unknown)}")
        return cls(**data)

    def with_changes(self, **changes: Any) -> ExtractConfig:
        return ExtractConfig.from_dict({**self.to_dict(), **changes})

