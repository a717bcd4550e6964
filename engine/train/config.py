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

from dataclasses import dataclass

from engine.errors import InputError
from engine.jobs.declaration import DeclaredSettings, param

MIXED_PRECISION = ("auto", "no", "fp16", "bf16")
CHANNELS_LAST = ("auto", "on", "off")
MAX_STEPS = 1_000_000


@dataclass(frozen=True, kw_only=True)
class TrainConfig(DeclaredSettings):
    """Every setting of a run, each with its help, bounds and choices: the CLI's flags and
    the Train page's form are made from them (engine.cli.arguments, desktop_app's
    params_form)."""

    KIND = "training"

    # --- optimisation
    steps: int = param(500, minimum=1, maximum=MAX_STEPS, help=(
        "how long to train: Custom Diffusion uses about 250 steps per concept, 500 for "
        "several together; more steps learn more detail but take longer"))
    learning_rate: float = param(1e-5, flag="--lr", minimum=0.0, above_minimum=True,
                                 maximum=1.0, help=(
        "how big each learning step is, before it is multiplied by the batch size: too high "
        "and the pictures break up, too low and the concepts do not stick"))
    scale_lr: bool = param(True, help="multiply the learning rate by the batch size and the "
                                      "accumulation, as Custom Diffusion does")
    batch_size: int = param(2, minimum=1, maximum=64, help=(
        "training pictures per step: more is steadier and needs more memory"))
    gradient_accumulation: int = param(1, flag="--accumulation", minimum=1, maximum=256,
                                       help="micro-batches added up into one step")
    lr_warmup_steps: int = param(0, minimum=0, maximum=MAX_STEPS,
                                 help="steps over which the learning rate rises from zero")
    weight_decay: float = param(1e-2, minimum=0.0, maximum=1.0,
                                help="AdamW's weight decay, on the k/v weights only (the "
                                     "token rows get none)")
    max_grad_norm: float = param(1.0, minimum=0.0, maximum=1e6, help="gradient clipping")
    seed: int = param(0, minimum=0, maximum=2**63 - 1,
                      help="the same seed and settings train the same run again")
    # --- data
    resolution: int | None = param(None, minimum=32, maximum=4096, help=(
        "training side in pixels, a multiple of 8 (default: the model profile's)"))
    hflip: bool = param(True, help="use each item as it is and mirrored (both latents are "
                                   "cached)")
    # Dataset items built with test models (a profile with test_models, e.g. tiny: their
    # pictures are noise) are left out of a run on a real profile unless this is on; a run
    # on a test profile always uses them.
    include_test_pictures: bool = param(False, help=(
        "also train on dataset items built with the test models (left out of a run on a "
        "real profile by default: their pictures are noise)"))
    # --- loss
    masked_loss: bool = param(False, help=(
        "learn mostly from inside the objects' masks, less from the background"))
    mask_background_weight: float = param(0.1, minimum=0.0, maximum=1.0, help=(
        "with the masked loss: the weight of the loss outside the masks"))
    prior_preservation: bool = param(False, help=(
        "also learn from pictures of the plain class word (a cat, a mug) made by the base "
        "model, so the model does not forget what an ordinary cat looks like; slower: those "
        "pictures are made first"))
    class_images_per_concept: int = param(50, minimum=1, maximum=10_000,
                                          help="with prior preservation: class pictures "
                                               "per class word")
    class_image_steps: int = param(30, minimum=1, maximum=1000,
                                   help="denoising steps for making a class picture")
    prior_loss_weight: float = param(1.0, minimum=0.0, maximum=100.0,
                                     help="the weight of the class pictures' loss")
    # --- Gen4Gen prompt strategies (see the module docstring)
    global_token: bool = param(True, flag="--no-global-token", help=(
        "Gen4Gen: one extra learned word for what all training pictures share (the look of "
        "several things together), so the concept words do not have to learn it"))
    repeat_concept_tokens: bool = param(True, flag="--no-repeat-tokens", help=(
        "Gen4Gen: name each concept twice in the training prompts, which strengthens each "
        "concept's identity"))
    separate_background: bool = param(True, flag="--no-separate-background", help=(
        "Gen4Gen: keep the scene in its own part of the prompt, so the concepts are not "
        "tied to the backgrounds they were trained on"))
    # --- speed and memory
    # auto: fp16/bf16 on CUDA, bf16 autocast on CPUs with bf16 units (fp32 master weights),
    # fp32 on MPS and other CPUs (engine.train.precision)
    mixed_precision: str = param("auto", choices=MIXED_PRECISION, help=(
        "auto: bf16 or fp16 on a CUDA GPU, bf16 autocast on a CPU with bf16 units, float32 "
        "elsewhere"))
    gradient_checkpointing: bool = param(False, help="less memory, slower")
    # auto: on for CUDA; off on CPU, where it measured no faster (SD 1.5 size) or slower
    # (tiny) in tests/benchmarks/bench_train.py
    channels_last: str = param("auto", choices=CHANNELS_LAST,
                               help="the UNet's memory layout: auto is on for CUDA only")
    # --- the run
    checkpoint_every: int = param(100, minimum=1, maximum=MAX_STEPS, help=(
        "save every this many steps: a stopped or crashed run resumes from the last save"))
    keep_checkpoints: int = param(2, minimum=1, maximum=100,
                                  help="how many of the last checkpoints are kept")
    sample_every: int = param(100, minimum=0, maximum=MAX_STEPS, help=(
        "make a sample picture every this many steps (0: none); samples show the learning "
        "as it goes and cost a little time each"))
    sample_steps: int = param(25, minimum=1, maximum=1000,
                              help="denoising steps of a sample picture")

    def check(self) -> None:
        if self.resolution is not None and self.resolution % 8:
            raise InputError(f"resolution must be a multiple of 8, got {self.resolution}")

    @property
    def effective_learning_rate(self) -> float:
        if not self.scale_lr:
            return self.learning_rate
        return self.learning_rate * self.batch_size * self.gradient_accumulation
