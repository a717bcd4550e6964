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
from dataclasses import dataclass
from typing import Any

from engine.checks import check_whole
from engine.errors import InputError
from engine.jobs.declaration import DeclaredSettings, param

MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
MAX_STEPS = 1_000_000


@dataclass(frozen=True, kw_only=True)
class ExtractConfig(DeclaredSettings):
    """Every setting of a run, each with its help, bounds and choices: the CLI's flags and
    the Extract page's form are made from them."""

    KIND = "extraction"

    # --- the schedule
    steps: int = param(400, minimum=1, maximum=MAX_STEPS, help=(
        "optimiser steps in all (fewer when the masks stop changing)"))
    iterations: int = param(4, minimum=1, maximum=MAX_STEPS, help=(
        "EM iterations: how often the masks are estimated again from what was learned "
        "(at most the steps)"))
    phase_one_steps: int | None = param(None, minimum=0, maximum=MAX_STEPS, help=(
        "steps that learn the tokens only, before the k/v weights join (default: half the "
        "steps)"))
    # --- optimisation
    token_learning_rate: float = param(5e-4, minimum=0.0, above_minimum=True, maximum=1.0,
                                       help="the learning rate of phase one (the tokens)")
    weights_learning_rate: float = param(1e-5, minimum=0.0, above_minimum=True, maximum=1.0,
                                         help="the learning rate of phase two (the tokens "
                                              "and the k/v weights)")
    weight_decay: float = param(1e-2, minimum=0.0, maximum=1.0,
                                help="AdamW's weight decay, on the k/v weights only")
    max_grad_norm: float = param(1.0, minimum=0.0, maximum=1e6, help="gradient clipping")
    attention_loss_weight: float = param(1e-2, minimum=0.0, maximum=100.0,
                                         help="λ: the attention loss's weight")
    seed: int = param(0, minimum=0, maximum=2**63 - 1,
                      help="the same seed and settings extract the same run again")
    # --- data
    resolution: int | None = param(None, minimum=64, maximum=4096, help=(
        "side in pixels, a multiple of 64 (default: the model profile's)"))
    hflip: bool = param(True, help="mirror the photo and its masks together at random")
    background_token: bool = param(False, help="also learn a token for the rest of the photo")
    # --- the E-step (engine.extract.estep)
    estep_timesteps: tuple[int, ...] = param((200, 400, 600), help=(
        "the noise levels (of 1000) whose attention maps an E-step averages"))
    mask_threshold: float = param(0.5, minimum=0.0, above_minimum=True, maximum=1.0,
                                  help="the threshold that turns an E-step's attention "
                                       "map into a mask")
    mask_blend: float = param(0.7, minimum=0.0, above_minimum=True, maximum=1.0,
                              help="weight of the new mask estimate against the previous mask")
    converge_iou: float = param(0.95, minimum=0.0, maximum=1.0, help=(
        "the masks converged (the run stops early) when each overlaps its previous one this "
        "much"))
    crf_iterations: int = param(5, minimum=0, maximum=50,
                                help="passes of the dense CRF that refines each mask")
    # --- speed and memory
    mixed_precision: str = param("auto", choices=MIXED_PRECISION, help=(
        "auto: bf16 or fp16 on a CUDA GPU, bf16 autocast on a CPU with bf16 units, float32 "
        "elsewhere"))
    gradient_checkpointing: bool = param(False, help="less memory, slower")
    # --- the run
    checkpoint_every: int = param(50, minimum=1, maximum=MAX_STEPS,
                                  help="steps between checkpoints")
    keep_checkpoints: int = param(2, minimum=1, maximum=100,
                                  help="how many of the last checkpoints are kept")

    def check(self) -> None:
        check_whole("iterations", self.iterations, 1, self.steps)
        if self.phase_one_steps is not None:
            check_whole("phase_one_steps", self.phase_one_steps, 0, self.steps)
        if self.resolution is not None and self.resolution % 64:
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

    @property
    def phase_two_from(self) -> int:
        """The first step (0-based) of phase two."""
        return self.steps // 2 if self.phase_one_steps is None else self.phase_one_steps

    def iteration_ends(self) -> list[int]:
        """After how many steps each E-step runs: evenly spread, the last at `steps`."""
        return [math.ceil((i + 1) * self.steps / self.iterations)
                for i in range(self.iterations)]

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["estep_timesteps"] = list(self.estep_timesteps)
        return data
