"""Background repainting around pasted objects, with a diffusers inpainting pipeline.

The repaint mask is everything but the objects, grown a few pixels into them and blurred
(Gen4Gen blurs it too) so the seams are repainted. The pipeline's output is then pasted
*under* the user's pixels: a feathered alpha that is exactly 255 inside each object keeps the
objects' pixels bit for bit, so an object's identity never drifts through the VAE.

Defaults follow Gen4Gen (guidance ~6, strength 0.9, ~60 steps), with fewer steps on a CPU.
The pipeline runs through engine.jobs.pipelines: memory savers from the device plan, one
retry in lean mode on out-of-memory (warm models unloaded first), and `on_step` after every
denoising step; raising from it (Cancelled) stops the pipeline and nothing is returned. It
computes as the plan says (engine.device.inference_autocast: bf16 on CPUs with bf16 units);
on a CPU its UNet and VAE may be OpenVINO's (engine.dataset.openvino_store chooses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.dataset.compose import Composition
from engine.device import inference_autocast
from engine.errors import InputError
from engine.jobs.pipelines import PipelineRunner, StepCallback
from engine.masks import erode, mask_to_image

if TYPE_CHECKING:
    from PIL import Image

    from engine.device import DevicePlan
    from engine.jobs import JobContext
    from engine.jobs.stage_setup import StageSetup

DEFAULT_GUIDANCE = 6.0
DEFAULT_STRENGTH = 0.9
ACCELERATOR_STEPS = 60  # Gen4Gen's step count
CPU_STEPS = 20  # a CPU takes seconds per step at 512 px; fewer steps keep an item in minutes
DEFAULT_NEGATIVE = "blurry, low quality, distorted, deformed, watermark, text"


def default_steps(device: str) -> int:
    return CPU_STEPS if device == "cpu" else ACCELERATOR_STEPS


@dataclass(frozen=True)
class InpaintSettings:
    """How the background is repainted. `steps=None` picks the device's default."""

    steps: int | None = None
    guidance: float = DEFAULT_GUIDANCE
    strength: float = DEFAULT_STRENGTH
    negative_prompt: str = DEFAULT_NEGATIVE
    seam_grow: float = 0.006  # repaint this far into each object (fraction of the side)
    seam_blur: float = 0.008  # feather of the repaint mask and the paste-back

    def __post_init__(self) -> None:
        if self.steps is not None and (isinstance(self.steps, bool)
                                       or not isinstance(self.steps, int) or self.steps < 1):
            raise InputError(f"--steps must be a positive whole number, got {self.steps!r}")
        for name, low, high in (("guidance", 0.0, 50.0), ("strength", 0.0, 1.0),
                                ("seam_grow", 0.0, 0.1), ("seam_blur", 0.0, 0.1)):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or not low <= value <= high):
                raise InputError(f"--{name} must be a number in [{low:g}, {high:g}], "
                                 f"got {value!r}")
        if self.strength == 0:
            raise InputError("--strength must be above 0 (0 would repaint nothing)")

    def steps_for(self, device: str) -> int:
        return self.steps if self.steps is not None else default_steps(device)

    def seam_pixels(self, size: int) -> tuple[int, int]:
        """(grow, blur) in pixels at a canvas side of `size`. The paste-back keeps the
        composite exactly at least grow + 3 * blur pixels inside each object."""
        grow = max(1, round(self.seam_grow * size)) if self.seam_grow else 0
        blur = max(1, round(self.seam_blur * size)) if self.seam_blur else 0
        return grow, blur

    def denoising_steps(self, device: str) -> int:
        """Steps the pipeline really runs: diffusers skips the first (1 - strength) of them."""
        steps = self.steps_for(device)
        return min(int(steps * self.strength), steps)

    def to_dict(self, device: str) -> dict[str, Any]:
        return {"steps": self.steps_for(device), "guidance": self.guidance,
                "strength": self.strength, "negative_prompt": self.negative_prompt,
                "seam_grow": self.seam_grow, "seam_blur": self.seam_blur}


@dataclass(frozen=True)
class SeamMasks:
    repaint: Image.Image  # L: white where the pipeline repaints (soft edge)
    paste_alpha: np.ndarray  # uint8 (H, W): 255 keeps the composite's pixel exactly


def seam_masks(keep: np.ndarray, settings: InpaintSettings) -> SeamMasks:
    """The repaint mask (keep mask shrunk, inverted, blurred) and the matching paste alpha."""
    from PIL import ImageFilter

    grow, blur = settings.seam_pixels(keep.shape[0])
    repaint = mask_to_image(~erode(keep, grow))
    if blur:
        repaint = repaint.filter(ImageFilter.GaussianBlur(blur))
    return SeamMasks(repaint=repaint, paste_alpha=255 - np.asarray(repaint, dtype=np.uint8))


def paste_back(composite: np.ndarray, painted: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """composite over painted with an 8-bit alpha; where alpha is 255 the result is
    exactly the composite (integer arithmetic, no rounding drift)."""
    a = alpha[..., None].astype(np.uint32)
    mixed = composite.astype(np.uint32) * a + painted.astype(np.uint32) * (255 - a) + 127
    return (mixed // 255).astype(np.uint8)


@dataclass
class InpaintResult:
    image: Image.Image  # the item: repainted background, the user's objects pasted back
    painted: Image.Image  # the pipeline's raw output
    paste_alpha: np.ndarray


def _to_uint8(images: Any, plan: DevicePlan) -> np.ndarray:
    """The stored pixels (tests wrap this to see the floats)."""
    from engine.device import uint8_pixels

    return uint8_pixels(images, plan, "Inpainting")


class Inpainter(PipelineRunner):
    """A loaded inpainting pipeline, run with the device plan's memory savers and precision.
    `backend` says who computes its UNet and VAE: "torch", or "openvino" (CPU, see
    engine.dataset.openvino_models)."""

    backend = "torch"

    def paint(self, composition: Composition, prompt: str, settings: InpaintSettings,
              seed: int, on_step: StepCallback | None = None) -> InpaintResult:
        """Repaint everything but the objects; the objects' pixels are pasted back."""
        import torch
        from PIL import Image

        size = composition.size
        scale = getattr(self.pipe, "vae_scale_factor", 8)
        if size % scale:
            raise InputError(f"The canvas side ({size}) must be a multiple of {scale}")
        masks = seam_masks(composition.keep_mask, settings)
        steps = settings.steps_for(self.plan.device)
        total = settings.denoising_steps(self.plan.device)
        if total < 1:
            raise InputError(f"{steps} steps at strength {settings.strength} leave no step to "
                             "run; raise --steps or --strength")

        step_end = self.step_callback(on_step, None, total)

        def attempt(plan: DevicePlan) -> Any:
            # A fresh generator per attempt: the lean retry paints the same picture.
            generator = torch.Generator("cpu").manual_seed(seed)
            # no_grad, not inference_mode: under inference_mode autocast re-casts every
            # weight at every call (measured 10x slower per big linear layer).
            with torch.no_grad(), inference_autocast(plan):
                return self.pipe(
                    prompt=prompt, negative_prompt=settings.negative_prompt or None,
                    image=composition.image, mask_image=masks.repaint, height=size,
                    width=size, strength=settings.strength, guidance_scale=settings.guidance,
                    num_inference_steps=steps, generator=generator, output_type="np",
                    callback_on_step_end=step_end,
                ).images

        painted = self.run(attempt, check=lambda images: _to_uint8(images, self.plan))
        composite = np.asarray(composition.image, dtype=np.uint8)
        final = paste_back(composite, painted, masks.paste_alpha)
        return InpaintResult(image=Image.fromarray(final), painted=Image.fromarray(painted),
                             paste_alpha=masks.paste_alpha)


def load_inpainter(ctx: JobContext, setup: StageSetup, backend: str = "auto",
                   size: int | None = None) -> Inpainter:
    """The profile's inpainting pipeline on the planned device, kept warm in the worker.
    `backend`: auto, torch or openvino (engine.dataset.openvino_store.choose_backend, which
    says in one log line why it chose what it chose); `size`: the canvas side."""
    from engine.dataset.openvino_store import choose_backend
    from engine.models.loaders import load_inpaint

    plan = setup.device
    assert plan is not None, "inpainting runs on a device"
    path = setup.role_path("inpaint")
    choice = choose_backend(setup, backend, size or setup.profile.resolution)
    if choice.note:
        ctx.log(choice.note)
    if choice.backend == "openvino":
        assert choice.folder is not None
        from engine.dataset.openvino_models import openvino_inpaint_pipeline

        folder, precision = choice.folder, choice.precision

        def load_openvino() -> Inpainter:
            ctx.log(f"Loading the OpenVINO inpainting model ({precision}) from {folder}")
            inpainter = Inpainter(openvino_inpaint_pipeline(folder, path, precision), plan,
                                  ctx.models, ctx.log)
            inpainter.backend = "openvino"
            return inpainter

        key = setup.model_key("inpaint", f"openvino:{precision}:{folder}")
        inpainter = ctx.models.load(key, load_openvino)
    else:
        def load() -> Inpainter:
            ctx.log(f"Loading the inpainting model of profile {setup.profile.name!r} on "
                    f"{plan.describe()}")
            # With offload the pipeline starts on the CPU and moves per model while it runs.
            pipe = load_inpaint(path, "cpu" if plan.cpu_offload else plan.device, plan.dtype)
            return Inpainter(pipe, plan, ctx.models, ctx.log)

        inpainter = ctx.models.load(setup.model_key("inpaint", str(path), autocast=True), load)
    inpainter.log = ctx.log
    return inpainter
