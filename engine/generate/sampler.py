"""The warm text-to-image model that generation keeps loaded, and one picture from a recipe.

`GenerationModel` is the profile's base pipeline on the planned device (kept warm in the
worker's cache under its own key, so no other stage ever sees it holding concepts), plus
the run whose concepts it holds now. `use_run` switches runs: the previous run's tokens and
weights are taken out before the next run's go in. `generate` runs one recipe through the
PipelineRunner (progress and cancel at every step, one lean retry on out-of-memory), with a
latent preview every few steps and, when the recipe has a layout, the guided cross-attention.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.jobs.pipelines import PipelineRunner, StepCallback

if TYPE_CHECKING:
    from PIL import Image

    from engine.device import DevicePlan
    from engine.generate.concepts import RunConcepts
    from engine.generate.layout_guidance import AttentionRecord, LayoutGuidance
    from engine.generate.loading import LoadedConcepts
    from engine.generate.precision import InferencePrecision
    from engine.generate.recipe import Recipe
    from engine.jobs import JobContext
    from engine.jobs.stage_setup import StageSetup
    from engine.jobs.warm_cache import WarmCache

# Our names for diffusers' schedulers; "default" is the model's own (recorded by its name).
SCHEDULERS = {
    "pndm": "PNDMScheduler",
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}
LatentPreview = Callable[[int, Any], None]


def model_info(setup: StageSetup, folder: Path) -> dict[str, str]:
    """What identifies the base model in a recipe: where it comes from, its revision, and a
    fingerprint of its configs and file sizes (cheap: the weights are not read)."""
    spec = setup.profile.role("base")
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        digest.update(rel.encode())
        if path.suffix in (".json", ".txt"):
            digest.update(path.read_bytes())
        else:
            digest.update(str(path.stat().st_size).encode())
    source = f"folder {folder}" if setup.overrides.get("base") else spec.source
    return {"source": source, "revision": spec.revision, "fingerprint": digest.hexdigest()[:16]}


def _to_uint8(images: Any, plan: DevicePlan) -> Any:
    """The stored pixels (tests wrap this to see the floats)."""
    from engine.device import uint8_pixels

    return uint8_pixels(images, plan, "Generation")


class GenerationModel(PipelineRunner):
    """The warm base pipeline, the run it holds, and how it runs (precision, model info)."""

    def __init__(self, pipe: Any, plan: DevicePlan, precision: InferencePrecision,
                 info: dict[str, str], models: WarmCache | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        super().__init__(pipe, plan, models, log)
        self.precision = precision
        self.info = info
        self.loaded: LoadedConcepts | None = None
        self.base_scheduler = pipe.scheduler
        self._schedulers: dict[str, Any] = {}
        self._calls: dict[tuple[str, int], int] = {}

    # ------------------------------------------------------------------ concepts

    def use_run(self, run: RunConcepts) -> bool:
        """Hold `run`'s concepts (True if they were loaded now, False if already held)."""
        from engine.generate.loading import apply_concepts

        held = self.loaded
        if held is not None and held.fingerprint == run.fingerprint and \
                held.run.export_dir == run.export_dir:
            return False
        self.use_base()
        self.loaded = apply_concepts(self.pipe, run)
        return True

    def use_base(self) -> None:
        """Take the held run's concepts out: the pipeline is the base model again."""
        from engine.generate.loading import unload_concepts

        if self.loaded is not None:
            unload_concepts(self.pipe, self.loaded)
            self.loaded = None

    # ------------------------------------------------------------------ schedulers

    def scheduler_name(self, name: str) -> str:
        """The name a recipe records: "default" becomes the model's own scheduler."""
        if name != "default":
            return name
        own = type(self.base_scheduler).__name__
        return next((key for key, cls in SCHEDULERS.items() if cls == own), own)

    def scheduler(self, name: str) -> Any:
        """The scheduler `name` for the base model's noise schedule. Made once per name (its
        config parsing costs milliseconds) and reused, as pipelines reuse theirs: every
        pipeline call starts it afresh with set_timesteps."""
        import diffusers

        own = type(self.base_scheduler)
        if name in ("default", own.__name__, self.scheduler_name("default")):
            return self.base_scheduler
        if name not in SCHEDULERS:
            raise InputError(f"Unknown scheduler {name!r} (known: {', '.join(SCHEDULERS)})")
        if name not in self._schedulers:
            cls = getattr(diffusers, SCHEDULERS[name])
            self._schedulers[name] = cls.from_config(self.base_scheduler.config)
        return self._schedulers[name]

    def calls_per_image(self, recipe: Recipe) -> int:
        """UNet calls (= progress steps) one picture takes: PNDM adds one to the steps."""
        key = (recipe.scheduler, recipe.steps)
        if key not in self._calls:
            counter = copy.deepcopy(self.scheduler(recipe.scheduler))
            counter.set_timesteps(recipe.steps)
            self._calls[key] = len(counter.timesteps)
        return self._calls[key]

    # ------------------------------------------------------------------ one picture

    def guidance_for(self, recipe: Recipe, record: AttentionRecord | None = None
                     ) -> LayoutGuidance | None:
        """The layout guidance of `recipe` (None without a layout, unless recording)."""
        from engine.generate.layout_guidance import LayoutGuidance, Region
        from engine.generate.prompts import token_positions

        boxes = recipe.layout.boxes if recipe.layout is not None else ()
        if not boxes and record is None:
            return None
        run = self.loaded.run if self.loaded is not None else None
        regions = []
        for box in boxes:
            concept = next((c for c in (run.concepts if run else ()) if c.token == box.token),
                           None)
            if concept is None:
                raise InputError(f"The layout places {box.token}, which the loaded run did "
                                 "not learn")
            regions.append((box.token, Region(box, token_positions(self.pipe.tokenizer,
                                                                   recipe.prompt, concept))))
        scale = getattr(self.pipe, "vae_scale_factor", 8)
        layout = recipe.layout
        classifier_free = recipe.guidance > 1 and \
            self.pipe.unet.config.get("time_cond_proj_dim") is None
        return LayoutGuidance(regions, layout.strength if layout else 0.0,
                              layout.guided_fraction if layout else 0.0,
                              (recipe.height // scale, recipe.width // scale),
                              int(self.pipe.tokenizer.model_max_length), classifier_free, record)

    def generate(self, recipe: Recipe, on_step: StepCallback | None = None,
                 check_cancelled: Callable[[], None] | None = None,
                 on_latents: LatentPreview | None = None,
                 record: AttentionRecord | None = None) -> Image.Image:
        """The picture of `recipe` (whose run must be the one held). A Cancelled raised by
        `on_step` or `check_cancelled` stops it at once; nothing is returned then."""
        import torch
        from PIL import Image

        from engine.generate.layout_guidance import layout_guided

        scale = getattr(self.pipe, "vae_scale_factor", 8)
        if recipe.width % scale or recipe.height % scale:
            raise InputError(f"Width and height must be multiples of {scale}, got "
                             f"{recipe.width}x{recipe.height}")
        total = self.calls_per_image(recipe)
        step_end = self.step_callback(on_step, check_cancelled, total, on_latents)

        def attempt(_plan: DevicePlan) -> Any:
            # Per attempt: the lean retry starts from the same noise (a new generator) and
            # guidance state; the scheduler starts afresh at the pipeline's set_timesteps.
            self.pipe.scheduler = self.scheduler(recipe.scheduler)
            generator = torch.Generator("cpu").manual_seed(recipe.seed)
            if record is not None:
                record.calls.clear()
            guidance = self.guidance_for(recipe, record)
            guided = layout_guided(self.pipe, guidance) if guidance is not None else \
                contextlib.nullcontext()
            # no_grad, not inference_mode: under inference_mode autocast does not cache its
            # bf16 copies of the weights, and every layer casts its weights again at every
            # call (measured: a 4096x4096 linear 10x slower on a CPU).
            with torch.no_grad(), self.precision.autocast(), guided:
                return self.pipe(
                    prompt=recipe.prompt, negative_prompt=recipe.negative_prompt or None,
                    height=recipe.height, width=recipe.width, num_inference_steps=recipe.steps,
                    guidance_scale=recipe.guidance, generator=generator, output_type="np",
                    callback_on_step_end=step_end).images

        try:
            pixels = self.run(attempt, check=lambda images: _to_uint8(images, self.plan))
        finally:
            self.pipe.scheduler = self.base_scheduler
        return Image.fromarray(pixels)


def load_generation_model(ctx: JobContext, setup: StageSetup) -> GenerationModel:
    """The profile's base pipeline on the planned device, warm in the worker."""
    from engine.generate.precision import inference_precision
    from engine.models.loaders import load_text_to_image

    plan = setup.device
    assert plan is not None, "generation runs on a device"
    precision = inference_precision(plan)
    path = setup.role_path("base")
    # Its own key: this pipeline holds a run's concepts, so no other stage may share it.
    key = setup.model_key("base", f"generate:{path}", autocast=True)

    def load() -> GenerationModel:
        ctx.log(f"Loading the base model of profile {setup.profile.name!r} on "
                f"{plan.describe()}; computing in {precision.describe()}")
        # With offload the pipeline starts on the CPU and moves per model while it runs.
        pipe = load_text_to_image(path, "cpu" if plan.cpu_offload else plan.device,
                                  precision.weight_dtype)
        return GenerationModel(pipe, plan, precision, model_info(setup, path), ctx.models,
                               ctx.log)

    model = ctx.models.load(key, load)
    model.log, model.models = ctx.log, ctx.models
    return model
