"""What each stage costs, in seconds and bytes, per model profile and kind of device: the
plan's estimates and the weights of the chain's progress bar.

A stage costs `load` once (models loaded or found warm, caches made) plus `per_unit` for each
unit (photo, layout, dataset item, training step, picture) plus `per_step` for each denoising
step of a unit. Where each figure comes from:

**tiny, this machine (2 cores, 1 thread per process, AMX bf16 units)** — measured with
tests/benchmarks/bench_personalize.py: `personalize-costs` calls each stage's job function
alone, in chain order with one warm cache, on a fresh project of the scikit-image cat, mug and
rocket photos, and reads load and per-unit costs from its progress events (dataset items and
pictures at two step counts give the per-step cost); `personalize-tiny` runs each preset end
to end and reports each stage's time beside its estimate. The figures below blend the two.
They stand for every device kind: the tiny models are too small for a GPU or bf16 to matter.

**sd15 on a CPU** — from full-size figures measured here (random weights, SD 1.5's shapes):

* dataset item, 512 px, 3 steps (2 denoising steps at strength 0.9), float32: 200-270 s end
  to end (tests/benchmarks/bench_dataset.py, bench_cpu_precision.py); bf16 compute 1.6-2x
  faster. Its parts, measured alone in one process (`personalize-sd15-parts`): one UNet call
  with guidance (batch 2, 64² latents) 10.9 s float32 / 3.5 s bf16; VAE encode 9.0 / 6.7 s,
  decode 20.2 / 15.5 s. The end-to-end figure is several times the sum of its parts (that
  benchmark ran with memory savers, on a shared machine); the estimates keep the end-to-end
  figure, so they err long: an item is (235 - 2 × 10.9) s plus 10.9 s per denoising step in
  float32, (235 - 2 × 10.9) / 1.8 s plus 3.5 s per step in bf16.
* training step, 512 px, batch 2: 14-24 s float32 (bench_train.py): 19 s; bf16 assumed
  1.8x faster, like the dataset item. A new run first encodes each item and its mirror image
  with the VAE (2 × 9.0 s float32, 2 × 6.7 s bf16 per item).
* picture, 512 px: text encoder (~0.5 s) + steps × UNet call (× 1.05 for layout guidance,
  measured within 5-15 % in bench_generate.py) + VAE decode; at 256 px and 3 steps the same
  sum gives the ~7 s in bf16 that bench_generate.py measured.
* planner: 1.17 s per layout warm, 2.15 s for the first with the model load (README).
* estimates, not measured here: SAM ViT-B's image encoder at 1024² (~5 s float32; the
  benchmark `segment-sam-vit-b` measures it), OWL-ViT B/32 + CLIP ViT-B/32 per picture (~1 s;
  `score` measures it), and model loads (~15 s for a 4 GB pipeline from a warm disk cache).

**sd15 on a GPU** — an estimate, not measured (no GPU here): a mid-range CUDA card in fp16
(RTX 3060 class) runs a 512 px UNet call with guidance in ~0.1 s and a Custom Diffusion step
in ~0.6 s. The plan says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import InputError

DATASET_STRENGTH = 0.9  # the dataset builder's default inpainting strength


@dataclass(frozen=True)
class StageCost:
    load: float = 0.0  # seconds once per stage run
    per_unit: float = 0.0  # seconds per unit
    per_step: float = 0.0  # seconds per denoising step of a unit

    def seconds(self, units: int, steps: int = 0) -> float:
        if units <= 0:
            return 0.0
        return self.load + units * (self.per_unit + self.per_step * steps)


@dataclass(frozen=True)
class CostTable:
    segment: StageCost  # unit: a photo
    plan: StageCost  # unit: a layout
    dataset: StageCost  # unit: an item; steps: denoising steps run
    train: StageCost  # unit: a step; load: model load (the latent cache is per item, below)
    train_cache_per_item: float  # a new run encodes each dataset item (and its mirror) once
    train_sample: StageCost  # unit: a training preview; steps: its denoising steps
    generate: StageCost  # unit: a picture; steps: its denoising steps
    score: StageCost  # unit: a picture
    measured: bool
    source: str  # one line for people: where the figures come from


@dataclass(frozen=True)
class DiskSizes:
    mask_per_pixel: float  # a mask and its cut-out, bytes per photo pixel
    item: int  # a dataset item: image and masks
    trained: int  # the tensors a run trains (k/v weights and token rows), in float32
    run_per_item: int  # its latent cache, per dataset item
    picture: int  # a generated picture with its recipe

    @property
    def checkpoint(self) -> int:
        """A checkpoint: the trained tensors with Adam's two moments."""
        return 3 * self.trained

    @property
    def run(self) -> int:
        """A training run at its largest: the checkpoints on disk at once and the export."""
        return CHECKPOINTS_ON_DISK * self.checkpoint + self.trained


# tiny: measured here by tests/benchmarks/bench_personalize.py: each stage alone
# (`personalize-costs`, median of 3 runs) and inside the chain (`personalize-tiny`: the stage
# times of the quick, standard and best runs, fitted load + per unit), on a machine shared
# with other work (load average 3-4 on 2 cores): runs vary by ±30 %. Scoring's load is its
# first model load (in the chain it happens in generation's scoring phase).
TINY = CostTable(
    segment=StageCost(load=1.0, per_unit=0.2),
    plan=StageCost(load=2.9, per_unit=0.8),
    dataset=StageCost(load=2.5, per_unit=0.15, per_step=0.015),
    train=StageCost(load=0.4, per_unit=0.055),
    train_cache_per_item=0.01,
    train_sample=StageCost(per_unit=0.11, per_step=0.023),
    generate=StageCost(load=0.35, per_unit=0.11, per_step=0.023),
    score=StageCost(load=0.3, per_unit=0.02),
    measured=True,
    source="measured on this 2-core CPU with the tiny profile (engine/personalize/costs.py)")

_UNET_FP32, _UNET_BF16 = 10.9, 3.5  # one 512 px UNet call with guidance, seconds
_DECODE_FP32, _DECODE_BF16 = 20.2, 15.5
_ENCODE_FP32, _ENCODE_BF16 = 9.0, 6.7
_GUIDED = 1.05  # layout guidance's share of extra work per step
_BF16 = 1.8  # the end-to-end bf16 speed-up measured for a dataset item (1.6-2x)

SD15_CPU = CostTable(
    segment=StageCost(load=3.0, per_unit=5.0),
    plan=StageCost(load=1.0, per_unit=1.17),
    dataset=StageCost(load=18.0, per_unit=235 - 2 * _UNET_FP32, per_step=_UNET_FP32),
    train=StageCost(load=15.0, per_unit=19.0),
    train_cache_per_item=2 * _ENCODE_FP32,
    train_sample=StageCost(per_unit=_DECODE_FP32 + 0.5, per_step=_UNET_FP32),
    generate=StageCost(load=15.0, per_unit=_DECODE_FP32 + 0.5, per_step=_UNET_FP32 * _GUIDED),
    score=StageCost(load=4.0, per_unit=1.0),
    measured=True,
    source="SD 1.5 on a CPU in float32: from full-size figures measured on a 2-core CPU "
           "(engine/personalize/costs.py)")
SD15_CPU_BF16 = CostTable(
    segment=StageCost(load=3.0, per_unit=5.0 / _BF16),
    plan=SD15_CPU.plan,
    dataset=StageCost(load=18.0, per_unit=(235 - 2 * _UNET_FP32) / _BF16, per_step=_UNET_BF16),
    train=StageCost(load=15.0, per_unit=19.0 / _BF16),
    train_cache_per_item=2 * _ENCODE_BF16,
    train_sample=StageCost(per_unit=_DECODE_BF16 + 0.5, per_step=_UNET_BF16),
    generate=StageCost(load=15.0, per_unit=_DECODE_BF16 + 0.5, per_step=_UNET_BF16 * _GUIDED),
    score=StageCost(load=4.0, per_unit=1.0 / _BF16),
    measured=True,
    source="SD 1.5 on a CPU with bf16 compute: from full-size figures measured on a 2-core "
           "CPU (engine/personalize/costs.py)")
SD15_GPU = CostTable(
    segment=StageCost(load=3.0, per_unit=0.3),
    plan=SD15_CPU.plan,  # the planner's LLM runs on the CPU (llama.cpp) everywhere
    dataset=StageCost(load=10.0, per_unit=2.0, per_step=0.1),
    train=StageCost(load=10.0, per_unit=0.6),
    train_cache_per_item=0.2,
    train_sample=StageCost(per_unit=0.5, per_step=0.1),
    generate=StageCost(load=8.0, per_unit=0.5, per_step=0.1 * _GUIDED),
    score=StageCost(load=4.0, per_unit=0.1),
    measured=False,
    source="SD 1.5 on a GPU: an estimate for a mid-range CUDA card, not measured")

COSTS: dict[str, dict[str, CostTable]] = {
    "tiny": {"cpu": TINY, "cpu-bf16": TINY, "gpu": TINY},
    "sd15": {"cpu": SD15_CPU, "cpu-bf16": SD15_CPU_BF16, "gpu": SD15_GPU},
}

# Training keeps two checkpoints (TrainConfig.keep_checkpoints) and writes the next one in
# full before it prunes the oldest: three are on disk at that moment.
CHECKPOINTS_ON_DISK = 3

# tiny measured from its files (64 px: 92.5 kB trained, a 288 kB checkpoint); sd15 from SD
# 1.5's sizes: 19.2 M trained k/v parameters (16 cross-attention layers, 2 × 768 × 12480) =
# 77 MB in float32; the latent cache is 4 × 64 × 64 float32 mean and std of an item and its
# mirror image (256 kB).
DISK = {
    "tiny": DiskSizes(mask_per_pixel=1.7, item=10_500, trained=96_000, run_per_item=4_200,
                      picture=11_000),
    "sd15": DiskSizes(mask_per_pixel=1.7, item=450_000, trained=77_000_000,
                      run_per_item=262_144, picture=450_000),
}


def cost_table(profile: str, kind: str) -> CostTable:
    """The table for `profile` on a device of `kind`; a profile without its own (one added
    later) is estimated like SD 1.5 and says so."""
    table = COSTS.get(profile)
    if table is None:
        base = COSTS["sd15"][kind]
        return CostTable(**{**base.__dict__, "measured": False,
                            "source": f"profile {profile}: estimated like SD 1.5"})
    if kind not in table:
        raise InputError(f"device kind must be one of {', '.join(table)}, got {kind!r}")
    return table[kind]


def disk_sizes(profile: str) -> DiskSizes:
    return DISK.get(profile, DISK["sd15"])
