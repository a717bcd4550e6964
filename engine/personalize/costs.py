"""What each stage costs, in seconds and bytes, per model profile and kind of device: the
plan's estimates and the weights of the chain's progress bar.

A stage costs `load` once (models loaded or found warm, caches made) plus `per_unit` for each
unit (photo, layout, dataset item, training step, picture) plus `per_step` for each UNet call
of a unit. Where each figure comes from:

**tiny** — measured with tests/benchmarks/bench_personalize.py on a 2-core CPU with AMX (one
thread per process): `personalize-costs` calls each stage's job function alone, in chain order
with one warm cache, and reads load and per-unit costs from its progress events;
`personalize-tiny` runs each preset end to end beside its estimate. The figures blend the two
and stand for every device kind: the tiny models are too small for a GPU or bf16 to matter.

**sd15 on a CPU** — work ÷ speed, per kind of CPU (engine.device.CPU_KINDS):

* work: each model call's floating-point operations by kind (convolution, linear, attention)
  and elements through norms, counted on SD 1.5's architecture (engine/personalize/work.py);
* speed: this machine's calibration (engine/personalize/calibration.py: a few kernels at the
  profile's resolution in each precision its plans use, seconds, stored in the app's data
  folder) in the precision the plan computes in. Before there is one the plan says it is a
  rough estimate and uses its CPU kind's ROUGH_RATES;
* a stage's shape: a dataset item is 2 text encodes, 2 VAE encodes (image and masked image)
  and a decode, the work around them (DATASET_ITEM_OTHER) and one UNet call with guidance
  per denoising step; a training step is the text encoder's and the UNet's forward and
  backward (batch 2), and a new run first encodes each item and its mirror image; a picture
  is 2 text encodes, a decode and one UNet call per step (× GUIDED for layout guidance);
* what the kernels do not see (model loads, the work around the model calls) are estimates;
  SAM's image encoder and scoring are seconds from the AMX machine scaled by the float32
  linear layers' speed;
* each stage's load and a scale of its work from what the stage took on this machine
  (engine/personalize/timings.py), for every profile.

How well it agrees: `personalize-sd15-stages` runs SD 1.5 at 512 px with random weights (the
dataset, train and generate job functions, reduced counts) after a calibration. On an AMD
EPYC with AVX2 (one thread, 2 cores shared with other work; calibration 1.2 s) the plan said
151 / 139 / 117 s for a dataset item, two training steps and a picture (each with its model
load) that took 142 / 136 / 96 s of CPU time (1.06 / 1.03 / 1.22x); the wall-clock times
were 422 / 152 / 98 s, the first while other work held most of the CPU. The UNet call with
guidance: 22.6 s planned, 22.7 s measured.

**sd15 on a GPU** — an estimate, not measured (no GPU here): a mid-range CUDA card in fp16
(RTX 3060 class) runs a 512 px UNet call with guidance in ~0.1 s and a Custom Diffusion step
in ~0.6 s. The plan says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from engine.errors import InputError
from engine.personalize.presets import DEVICE_KINDS
from engine.personalize.work import SD15

if TYPE_CHECKING:
    from engine.personalize.calibration import Calibration
    from engine.personalize.timings import StageTimings

DATASET_STRENGTH = 0.9  # the dataset builder's default inpainting strength
GUIDED = 1.05  # layout guidance's extra work per step (bench_generate.py: within 5-15 %)


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
# first model load (in the chain it happens in generation's scoring phase). Segmentation as
# the chain's first stage (personalize-tiny-learning, 2026-12): its imports and GrabCut on the
# full-size photos, 4-8 s and 1-3 s per photo. These are only the first plan's figures: each
# stage's own runs then refine them on the machine (timings.py).
TINY = CostTable(
    segment=StageCost(load=4.0, per_unit=1.2),
    plan=StageCost(load=2.9, per_unit=0.8),
    dataset=StageCost(load=2.5, per_unit=0.15, per_step=0.015),
    train=StageCost(load=0.4, per_unit=0.055),
    train_cache_per_item=0.01,
    train_sample=StageCost(per_unit=0.11, per_step=0.023),
    generate=StageCost(load=0.35, per_unit=0.11, per_step=0.023),
    score=StageCost(load=0.3, per_unit=0.02),
    measured=True,
    source="measured on this 2-core CPU with the tiny profile (engine/personalize/costs.py)")

# Rough kernel speeds per CPU kind for a plan made before this machine is calibrated (FLOP/s;
# norm: elements/s), one thread. avx2: calibrated on an AMD EPYC with AVX2 (2 cores shared with
# other work; `personalize-sd15-stages`). avx512-bf16 and amx: those speeds scaled so that SD
# 1.5's UNet call with guidance takes what the harness measured on such a CPU (Zen 4: 17.5 s in
# float32, 11.2 s in bf16 with attention no faster; Xeon with AMX: 11.9 s / 4.19 s). Arm: no
# Arm CPU measured; AVX2's speeds stand in, and bf16 is assumed no faster.
_AVX2 = {"conv": 94e9, "linear": 64e9, "attention": 51e9, "norm": 238e6}


def _times(rates: dict[str, float], **k: float) -> dict[str, float]:
    return {name: rate * k.get(name, k.get("other", 1.0)) for name, rate in rates.items()}


def _unet_call_in(seconds: float, rates: dict[str, float]) -> dict[str, float]:
    """`rates` scaled alike so that SD 1.5's UNet call with guidance takes `seconds`."""
    return _times(rates, other=SD15["unet_guided"].seconds(rates) / seconds)


_ZEN4 = _unet_call_in(17.5, _AVX2)
_AMX = _unet_call_in(11.9, _AVX2)
ROUGH_RATES: dict[str, dict[str, dict[str, float]]] = {
    "avx2": {"float32": _AVX2},
    # bf16: convolutions and linear layers 2.15x, attention 0.9x (-> 11.2 s)
    "avx512-bf16": {"float32": _ZEN4,
                    "bfloat16": _times(_ZEN4, conv=2.15, linear=2.15, attention=0.9)},
    # bf16: everything 3.1x (-> 4.19 s)
    "amx": {"float32": _AMX, "bfloat16": _times(_AMX, conv=3.1, linear=3.1, attention=3.1)},
    "arm": {"float32": _AVX2},
    "arm-bf16": {"float32": _AVX2, "bfloat16": _AVX2},
}
# What the kernels do not see: loading a pipeline from a warm disk cache, and a dataset
# item's work around its model calls (compose, caption, masks, the filter, writes). Estimates,
# not fitted: `personalize-sd15-stages` measures the stages they are part of.
LOAD_INPAINT = 18.0
LOAD_BASE = 15.0
DATASET_ITEM_OTHER = 5.0
# Models whose work is not counted here, in seconds on the Xeon with AMX in float32 (they
# always run in float32), scaled by the float32 linear layers' speed (both are transformers):
# SAM ViT-B's image encoder at 1024² (an estimate), OWL-ViT B/32 with CLIP ViT-B/32 crops
# per picture (`score` measured 1.08-1.12 s).
SAM_IMAGE, SCORE_PICTURE = 5.0, 1.1


def sd15_cpu_table(precision: str, cpu_kind: str, calibration: Calibration | None
                   ) -> CostTable:
    """SD 1.5 on a CPU computing in `precision`: each model call's work (engine.personalize.
    work.SD15) at this machine's calibrated speeds, or at its CPU kind's rough ones."""
    rough = ROUGH_RATES.get(cpu_kind, ROUGH_RATES["avx2"])
    if calibration is not None and precision in calibration.rates:
        rates, source, measured = calibration.rates[precision], calibration.describe(), True
        fp32 = calibration.rates["float32"]
    else:
        rates, fp32 = rough.get(precision, rough["float32"]), rough["float32"]
        source = (f"a rough estimate for a CPU of kind {cpu_kind}: not calibrated on this "
                  "computer yet (mycanvas doctor --calibrate)")
        measured = False

    def t(part: str) -> float:
        return SD15[part].seconds(rates)

    slower = _AMX["linear"] / fp32["linear"]
    unet, text, decode, encode = t("unet_guided"), t("text"), t("vae_decode"), t("vae_encode")
    return CostTable(
        segment=StageCost(load=3.0, per_unit=SAM_IMAGE * slower),
        plan=StageCost(load=1.0, per_unit=1.17),
        dataset=StageCost(load=LOAD_INPAINT,
                          per_unit=2 * text + 2 * encode + decode + DATASET_ITEM_OTHER,
                          per_step=unet),
        train=StageCost(load=LOAD_BASE, per_unit=t("train_step")),
        train_cache_per_item=2 * encode,
        train_sample=StageCost(per_unit=2 * text + decode, per_step=unet),
        generate=StageCost(load=LOAD_BASE, per_unit=2 * text + decode, per_step=unet * GUIDED),
        score=StageCost(load=4.0, per_unit=SCORE_PICTURE * slower),
        measured=measured, source=f"SD 1.5 on a CPU in {precision}: {source}")


SD15_GPU = CostTable(
    segment=StageCost(load=3.0, per_unit=0.3),
    plan=StageCost(load=1.0, per_unit=1.17),  # the planner's LLM runs on the CPU everywhere
    dataset=StageCost(load=10.0, per_unit=2.0, per_step=0.1),
    train=StageCost(load=10.0, per_unit=0.6),
    train_cache_per_item=0.2,
    train_sample=StageCost(per_unit=0.5, per_step=0.1),
    generate=StageCost(load=8.0, per_unit=0.5, per_step=0.1 * GUIDED),
    score=StageCost(load=4.0, per_unit=0.1),
    measured=False,
    source="SD 1.5 on a GPU: an estimate for a mid-range CUDA card, not measured")


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


def cost_model_digest() -> str:
    """A digest of the figures above: the stage timings learned against other figures (an
    older version of this file) are not applied to these."""
    import hashlib

    figures = (TINY, SD15_GPU, ROUGH_RATES, LOAD_INPAINT, LOAD_BASE, DATASET_ITEM_OTHER,
               SAM_IMAGE, SCORE_PICTURE, GUIDED, DATASET_STRENGTH, sorted(SD15.items()))
    return hashlib.sha256(repr(figures).encode()).hexdigest()[:16]


def cost_table(profile: str, kind: str, cpu_kind: str = "avx2",
               calibration: Calibration | None = None,
               timings: StageTimings | None = None) -> CostTable:
    """The table for `profile` on a device of `kind` (DEVICE_KINDS); on a CPU, from the
    calibration of this machine when there is one, else from the rough speeds of its CPU
    kind (engine.device.CPU_KINDS). A profile without its own figures is estimated like
    SD 1.5 and says so. `timings`: what the stages took on this machine, which refine every
    profile's figures (engine.personalize.timings)."""
    from engine.personalize.timings import refined

    if kind not in DEVICE_KINDS:
        raise InputError(f"device kind must be one of {', '.join(DEVICE_KINDS)}, got {kind!r}")
    if profile == "tiny":
        return refined(TINY, timings, profile, kind)
    table = SD15_GPU if kind == "gpu" else sd15_cpu_table(
        "bfloat16" if kind == "cpu-bf16" else "float32", cpu_kind, calibration)
    if profile != "sd15":
        table = replace(table, measured=False,
                        source=f"profile {profile}: estimated like SD 1.5 ({table.source})")
    return refined(table, timings, profile, kind)


def disk_sizes(profile: str) -> DiskSizes:
    return DISK.get(profile, DISK["sd15"])
