"""TrainConfig: the settings of one Custom Diffusion run, validated, JSON round-trippable.

Defaults follow Custom Diffusion (lr 1e-5 scaled by the batch, batch 2, AdamW with weight
decay 1e-2 on the k/v weights, gradient clipping at 1.0, constant learning rate) and
Gen4Gen's prompt strategies (all three on). Each Gen4Gen switch, and what it does:

* ``global_token`` — one extra learned token (``<composition>``) starts every training
  prompt. It soaks up what all training images share (the composed look, lighting, the
  "several objects together" layout) so the concept tokens do not have to, and at generation
  time it asks for that multi-object composition. Off: prompts start with "a photo of".
* ``repeat_concept_tokens`` — each "<token> class" phrase appears twice in the prompt. More
  of the text's attention goes to the concept tokens, which Gen4Gen found strengthens each
  concept's identity in multi-concept images. Off: each phrase appears once.
* ``separate_background`` — the scene goes into its own clause ("… . background: a sunlit
  kitchen") instead of running on from the concept phrases. The concept tokens then describe
  the objects only and do not absorb the scene, so the concepts move to new backgrounds at
  generation time. Off: the item's token caption is used as written.

Where the paper gives no number we chose one and say so here: the global token starts from
the word "photo"; the repeat count is 2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from engine.checks import check_number, check_whole
from engine.errors import InputError

MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
CHANNELS_LAST = ("auto", "on", "off")
MAX_STEPS = 1_000_000


@dataclass(frozen=True)
class TrainConfig:
    # --- optimisation
    steps: int = 500  # Custom Diffusion: ~250 per concept, 500 for multi-concept
    learning_rate: float = 1e-5
    scale_lr: bool = True  # lr × batch size × accumulation, as Custom Diffusion does
    batch_size: int = 2
    gradient_accumulation: int = 1
    lr_warmup_steps: int = 0
    weight_decay: float = 1e-2  # on the k/v weights only; the token rows get none
    max_grad_norm: float = 1.0
    seed: int = 0
    # --- data
    resolution: int | None = None  # None: the model profile's resolution
    hflip: bool = True  # each item is used as is or mirrored (both latents are cached)
    # Dataset items built with test models (a profile with test_models, e.g. tiny: their
    # pictures are noise) are left out of a run on a real profile unless this is on; a run
    # on a test profile always uses them.
    include_test_pictures: bool = False
    # --- loss
    masked_loss: bool = False  # weight the loss inside the object masks ...
    mask_background_weight: float = 0.1  # ... and by this much outside them
    prior_preservation: bool = False  # regularise with the base model's class images
    class_images_per_concept: int = 50
    class_image_steps: int = 30  # denoising steps for making a class image
    prior_loss_weight: float = 1.0
    # --- Gen4Gen prompt strategies (see the module docstring)
    global_token: bool = True
    repeat_concept_tokens: bool = True
    separate_background: bool = True
    # --- speed and memory
    # auto: fp16/bf16 on CUDA, bf16 autocast on CPUs with bf16 units (fp32 master weights),
    # fp32 on MPS and other CPUs (engine.train.precision)
    mixed_precision: str = "auto"
    gradient_checkpointing: bool = False
    # auto: on for CUDA; off on CPU, where it measured no faster (SD 1.5 size) or slower
    # (tiny) in tests/benchmarks/bench_train.py
    channels_last: str = "auto"
    # --- the run
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    sample_every: int = 100  # 0: no preview samples
    sample_steps: int = 25

    def __post_init__(self) -> None:
        check_whole("steps", self.steps, 1, MAX_STEPS)
        check_number("learning_rate", self.learning_rate, 0.0, 1.0, low_open=True)
        check_whole("batch_size", self.batch_size, 1, 64)
        check_whole("gradient_accumulation", self.gradient_accumulation, 1, 256)
        check_whole("lr_warmup_steps", self.lr_warmup_steps, 0, MAX_STEPS)
        check_number("weight_decay", self.weight_decay, 0.0, 1.0)
        check_number("max_grad_norm", self.max_grad_norm, 0.0, 1e6)
        check_whole("seed", self.seed, 0, 2**63 - 1)
        if self.resolution is not None:
            check_whole("resolution", self.resolution, 32, 4096)
            if self.resolution % 8:
                raise InputError(f"resolution must be a multiple of 8, got {self.resolution}")
        check_number("mask_background_weight", self.mask_background_weight, 0.0, 1.0)
        check_whole("class_images_per_concept", self.class_images_per_concept, 1, 10_000)
        check_whole("class_image_steps", self.class_image_steps, 1, 1000)
        check_number("prior_loss_weight", self.prior_loss_weight, 0.0, 100.0)
        _choice("mixed_precision", self.mixed_precision, MIXED_PRECISION)
        _choice("channels_last", self.channels_last, CHANNELS_LAST)
        check_whole("checkpoint_every", self.checkpoint_every, 1, MAX_STEPS)
        check_whole("keep_checkpoints", self.keep_checkpoints, 1, 100)
        check_whole("sample_every", self.sample_every, 0, MAX_STEPS)
        check_whole("sample_steps", self.sample_steps, 1, 1000)
        for name in ("scale_lr", "hflip", "masked_loss", "prior_preservation", "global_token",
                     "repeat_concept_tokens", "separate_background", "gradient_checkpointing",
                     "include_test_pictures"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def effective_learning_rate(self) -> float:
        if not self.scale_lr:
            return self.learning_rate
        return self.learning_rate * self.batch_size * self.gradient_accumulation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainConfig:
        """A config from JSON values; unknown keys are refused by name (a typo would
        otherwise silently train with the default)."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"Unknown training setting(s): {', '.join(unknown)}")
        return cls(**data)

    def with_changes(self, **changes: Any) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})



def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
