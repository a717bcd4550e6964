"""The `prepare-openvino` job: convert the profile's inpainting UNet and VAE to OpenVINO once,
verify them against torch, and measure which backend is faster on this computer.

* Convert (once per profile and weights): `torch.export` captures each model with dynamic
  batch and sides from a small example (128 px, batch 2: no size is 0 or 1, which export
  would fix as constants), and OpenVINO's own converter (`openvino.convert_model`; not
  optimum-intel, whose pins conflict with ours) turns the program into IR saved with fp32
  weights (a float32 plan then really computes in fp32).
* Verify (once per precision), on a fixed seeded input at half the profile's resolution: the
  UNet's and both VAE halves' outputs against torch float32, as relative L2 differences,
  within VERIFY_BOUND for the precision. A conversion that fails is not used.
* Calibrate (once per computer, thread count, library versions and precision): one UNet
  step (batch 2, as guidance runs it) and one VAE decode at the profile's resolution, torch
  under the plan's autocast against OpenVINO, each after a warm-up call; projected per item
  as denoising steps x UNet + decode. Remembered in state.json; builds read it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from engine.dataset.openvino_models import SIDE_MULTIPLE, compiled_parts, openvino_precision
from engine.dataset.openvino_store import (
    FORMAT_VERSION,
    PARTS,
    UNET,
    VAE_DECODER,
    VAE_ENCODER,
    conversion_folder,
    import_openvino,
    machine_key,
    measured_faster,
    openvino_missing,
    openvino_version,
    plan_compute,
    read_state,
    remove_other_conversions,
    write_state,
)
from engine.device import inference_autocast
from engine.errors import InputError, MyCanvasError

if TYPE_CHECKING:
    from engine.dataset.jobs import OpenVinoPrepared, PrepareOpenVinoParams
    from engine.device import DevicePlan
    from engine.jobs import JobContext

EXPORT_SIDE = 128  # px: the example torch.export captures (shapes stay dynamic)
# Relative L2 difference from torch float32 a verified conversion stays within, per precision:
# fp32 is the same arithmetic reordered; bf16 keeps 8 mantissa bits (measured 2-3 % on the
# SD 1.5 architecture, and torch's own bf16 autocast differs as much).
VERIFY_BOUND = {"f32": 1e-3, "bf16": 0.06}
PHASES = ("loading the torch model", "converting the UNet", "converting the VAE encoder",
          "converting the VAE decoder", "verifying against torch", "measuring torch and "
          "OpenVINO on this computer")


class _UNetGraph(torch.nn.Module):
    def __init__(self, unet: Any) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor,
                encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]


class _EncoderGraph(torch.nn.Module):
    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(image).latent_dist.parameters  # mean and log-variance


class _DecoderGraph(torch.nn.Module):
    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents, return_dict=False)[0]


def example_inputs(pipe: Any, side: int, seed: int = 0,
                   vae_batch: int = 1) -> dict[str, tuple[torch.Tensor, ...]]:
    """Seeded inputs for each part at a canvas of `side` px (UNet: batch 2, as guidance)."""
    gen = torch.Generator().manual_seed(seed)
    latent = side // 8
    unet_cfg, vae_cfg = pipe.unet.config, pipe.vae.config
    width = pipe.text_encoder.config.hidden_size
    return {
        UNET: (torch.randn(2, unet_cfg.in_channels, latent, latent, generator=gen),
               torch.full((2,), 500.0),
               torch.randn(2, 77, width, generator=gen)),
        VAE_ENCODER: (torch.rand(vae_batch, 3, side, side, generator=gen) * 2 - 1,),
        VAE_DECODER: (torch.randn(vae_batch, vae_cfg.latent_channels, latent, latent,
                                  generator=gen),),
    }


def _dynamic_shapes(name: str) -> tuple[dict[int, Any], ...]:
    auto = torch.export.Dim.AUTO
    image = {0: auto, 2: auto, 3: auto}  # batch, height, width
    return (image, {0: auto}, {0: auto, 1: auto}) if name == UNET else (image,)


def convert(pipe: Any, out: Path, progress: Callable[[int, str], None]) -> float:
    """Convert the UNet and both VAE halves of `pipe` into `out`; returns the seconds taken."""
    ov = import_openvino()

    pipe.vae.disable_tiling()
    pipe.vae.disable_slicing()
    graphs = {UNET: _UNetGraph(pipe.unet), VAE_ENCODER: _EncoderGraph(pipe.vae),
              VAE_DECODER: _DecoderGraph(pipe.vae)}
    examples = example_inputs(pipe, EXPORT_SIDE, vae_batch=2)
    start = time.perf_counter()
    for k, name in enumerate(PARTS):
        progress(1 + k, PHASES[1 + k])
        with torch.no_grad():
            program = torch.export.export(graphs[name], examples[name],
                                          dynamic_shapes=_dynamic_shapes(name))
            model = ov.convert_model(program)
        del program
        ov.save_model(model, str(out / f"{name}.xml"), compress_to_fp16=False)
        del model
    return time.perf_counter() - start


def relative_l2(got: torch.Tensor, want: torch.Tensor) -> float:
    want = want.float()
    return float((got.float() - want).norm() / want.norm().clamp(min=1e-12))


def verify(pipe: Any, folder: Path, precision: str, side: int) -> dict[str, Any]:
    """Each part against torch float32 on a fixed input; `passed` within VERIFY_BOUND."""
    parts = compiled_parts(folder, precision)
    graphs = {UNET: _UNetGraph(pipe.unet), VAE_ENCODER: _EncoderGraph(pipe.vae),
              VAE_DECODER: _DecoderGraph(pipe.vae)}
    figures: dict[str, Any] = {"side": side}
    for name, inputs in example_inputs(pipe, side, seed=1).items():
        with torch.inference_mode():
            want = graphs[name](*inputs)
        figures[f"{name}_relative_l2"] = relative_l2(parts[name](*inputs), want)
    worst = max(PARTS, key=lambda n: figures[f"{n}_relative_l2"])
    bound = VERIFY_BOUND[precision]
    figures["passed"] = figures[f"{worst}_relative_l2"] <= bound
    if not figures["passed"]:
        figures["reason"] = (f"{worst} differs by {figures[f'{worst}_relative_l2']:.2%}, "
                             f"more than {bound:.2%}")
    return figures


def _timed(fn: Callable[[], Any]) -> float:
    fn()  # warm-up: kernel selection, first-inference set-up
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def calibrate(pipe: Any, folder: Path, plan: DevicePlan, side: int) -> dict[str, Any]:
    """Seconds per UNet step and per VAE decode at `side` px, torch (as a build runs it: the
    plan's precision, layout and savers) against OpenVINO; projected per item at the CPU's
    default steps."""
    from engine.dataset.inpaint import InpaintSettings
    from engine.device import apply_memory_savers

    apply_memory_savers(pipe, plan)
    precision = openvino_precision(plan_compute(plan))
    parts = compiled_parts(folder, precision, names=(UNET, VAE_DECODER))
    inputs = example_inputs(pipe, side, seed=2)
    unet, decoder = _UNetGraph(pipe.unet), _DecoderGraph(pipe.vae)

    def torch_run(graph: Any, args: tuple[torch.Tensor, ...]) -> Callable[[], Any]:
        def run() -> Any:
            with torch.no_grad(), inference_autocast(plan):  # as the builder runs it
                return graph(*args)
        return run

    timings = {
        "torch_unet_seconds": _timed(torch_run(unet, inputs[UNET])),
        "openvino_unet_seconds": _timed(lambda: parts[UNET](*inputs[UNET])),
        "torch_decode_seconds": _timed(torch_run(decoder, inputs[VAE_DECODER])),
        "openvino_decode_seconds": _timed(lambda: parts[VAE_DECODER](*inputs[VAE_DECODER])),
    }
    steps = InpaintSettings().denoising_steps("cpu")
    for backend in ("torch", "openvino"):
        timings[f"{backend}_item_seconds"] = (steps * timings[f"{backend}_unet_seconds"]
                                              + timings[f"{backend}_decode_seconds"])
    return {**timings, "side": side, "steps": steps, "measured_at": time.time()}


def _remove_stale_builds(root: Path) -> None:
    from engine.atomic import pid_alive

    for tmp in root.glob(".building-*") if root.is_dir() else []:
        pid = tmp.name.split("-")[1]
        if not pid.isdigit() or not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _convert_into_place(ctx: JobContext, pipe: Any, folder: Path, model_path: Path,
                        precision: str, side: int) -> dict[str, Any]:
    """Convert and verify in a temp folder; rename it into place only when verified."""
    import json
    import os
    import secrets

    root = folder.parent
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(root)
    tmp = root / f".building-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        seconds = convert(pipe, tmp, lambda k, text: ctx.progress(k, len(PHASES), text))
        (tmp / "configs.json").write_text(json.dumps(
            {"unet": dict(pipe.unet.config), "vae": dict(pipe.vae.config)}, default=str))
        ctx.progress(4, len(PHASES), PHASES[4])
        verified = verify(pipe, tmp, precision, side)
        if not verified["passed"]:
            raise MyCanvasError("The OpenVINO conversion does not match torch: "
                                f"{verified['reason']}; it is not used")
        state = {"format": FORMAT_VERSION, "source": str(model_path),
                 "openvino": openvino_version(), "convert_seconds": seconds,
                 "export_side": EXPORT_SIDE, "verified": {precision: verified},
                 "calibrations": {}}
        write_state(tmp, state)
        if folder.exists() and read_state(folder) is None:
            shutil.rmtree(folder)  # an incomplete conversion (a file removed by hand)
        try:
            tmp.rename(folder)
        except OSError:  # another job put a conversion there first: use that one
            if read_state(folder) is None:
                raise
        return read_state(folder) or state
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class _Setup:
    plan: DevicePlan
    profile: str
    model_path: Path
    resolution: int


def _resolve(params: PrepareOpenVinoParams) -> _Setup:
    from engine.jobs.stage_setup import resolve_stage

    setup = resolve_stage(params)
    plan = setup.device
    assert plan is not None  # the params declare a device
    if plan.device != "cpu":
        raise InputError(f"OpenVINO serves the CPU only; the device here is {plan.device}")
    missing = openvino_missing()
    if missing:
        raise InputError(missing)
    model_path = setup.role_path("inpaint")
    side = max(SIDE_MULTIPLE, setup.profile.resolution // SIDE_MULTIPLE * SIDE_MULTIPLE)
    return _Setup(plan, setup.profile.name, model_path, side)


def prepare_openvino_job(ctx: JobContext, params: PrepareOpenVinoParams) -> OpenVinoPrepared:
    """Job: make the profile's OpenVINO inpainting ready (convert, verify, calibrate)."""
    from engine.dataset.jobs import OpenVinoPrepared
    from engine.models.loaders import load_inpaint

    setup = _resolve(params)
    plan = setup.plan
    precision = openvino_precision(plan_compute(plan))
    folder = conversion_folder(setup.profile, setup.model_path)
    verify_side = max(SIDE_MULTIPLE, setup.resolution // 2 // SIDE_MULTIPLE * SIDE_MULTIPLE)
    key = machine_key(plan)
    state = read_state(folder)
    converted_now = state is None
    loaded: list[Any] = []

    def torch_pipe() -> Any:
        """The torch pipeline, loaded once and only when a phase needs it."""
        if not loaded:
            ctx.progress(0, len(PHASES), PHASES[0])
            weights = sum(f.stat().st_size for f in setup.model_path.rglob("*.safetensors"))
            ctx.models.make_room("cpu", 2 * weights)  # the model and its conversion
            loaded.append(load_inpaint(setup.model_path, "cpu", "float32"))
        return loaded[0]

    if state is None:
        ctx.log(f"Converting the inpainting model of profile {setup.profile!r} for OpenVINO "
                f"into {folder}")
        state = _convert_into_place(ctx, torch_pipe(), folder, setup.model_path, precision,
                                    verify_side)
        remove_other_conversions(setup.profile, folder, shutil.rmtree)
    if precision not in state.get("verified", {}):
        ctx.progress(4, len(PHASES), PHASES[4])
        state.setdefault("verified", {})[precision] = verify(torch_pipe(), folder, precision,
                                                             verify_side)
        write_state(folder, state)
    verified = state["verified"][precision]
    if not verified.get("passed"):
        raise MyCanvasError(f"The OpenVINO conversion does not match torch in {precision}: "
                            f"{verified.get('reason')}; it is not used")
    calibration = state.get("calibrations", {}).get(key)
    if calibration is None or params.recalibrate:
        ctx.progress(5, len(PHASES), PHASES[5])
        calibration = calibrate(torch_pipe(), folder, plan, setup.resolution)
        state.setdefault("calibrations", {})[key] = calibration
        write_state(folder, state)
    ctx.progress(len(PHASES), len(PHASES), "done")
    return OpenVinoPrepared(
        profile=setup.profile, folder=str(folder), precision=precision,
        converted_now=converted_now, convert_seconds=float(state["convert_seconds"]),
        unet_difference=float(verified[f"{UNET}_relative_l2"]),
        decoder_difference=float(verified[f"{VAE_DECODER}_relative_l2"]),
        torch_item_seconds=float(calibration["torch_item_seconds"]),
        openvino_item_seconds=float(calibration["openvino_item_seconds"]),
        used=measured_faster(calibration))
