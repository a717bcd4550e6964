"""The dataset's inpainting pipeline with OpenVINO doing the heavy passes on a CPU.

The diffusers pipeline keeps its own logic (prompt encoding, mask and image preparation,
the scheduler, classifier-free guidance), so the OpenVINO path and the torch path differ only
in who computes the UNet and the VAE: the pipeline's `unet` and `vae` are replaced by the
small torch modules below, which hand their inputs to OpenVINO compiled models. The text
encoder stays in torch (under the plan's autocast): one pass per item, under 1 % of its time.

They run the converted graphs as they are: no attention processor can be installed
(`set_attn_processor` refuses), and cross-attention kwargs are refused, so a pipeline that
needs our processors (layout guidance, attention capture) cannot run here by mistake.

Compiled models are made per input shape (static shapes run faster on OpenVINO's CPU plugin
than dynamic ones) and kept while the pipeline stays warm. OpenVINO's on-disk model cache is
not used: with reshaped models it served wrong blobs here (bf16 outputs 100 % off at a second
shape, OpenVINO 2026.4). Threads follow torch's (the worker's thread setting), so the two
backends share the cores the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from engine.dataset.openvino_store import PARTS, UNET, VAE_DECODER, VAE_ENCODER, import_openvino
from engine.errors import MyCanvasError

# The traced UNet forwards no upsample sizes: latents must be a multiple of 2**3 (its three
# upsamplers), i.e. a canvas side that is a multiple of 64 px.
SIDE_MULTIPLE = 64
# OpenVINO's names for the plan's compute dtypes.
OV_PRECISION = {"bfloat16": "bf16", "float32": "f32"}


def openvino_precision(plan_compute: str) -> str:
    return OV_PRECISION[plan_compute]


class CompiledPart:
    """One converted model (an OpenVINO IR file), compiled per input shape on first use."""

    def __init__(self, xml: Path, precision: str, threads: int | None = None) -> None:
        ov = import_openvino()
        self.xml, self.precision = xml, precision
        self.core = ov.Core()
        self.config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
                       "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads())}
        self._compiled: dict[tuple[tuple[int, ...], ...], Any] = {}

    def _for(self, shapes: tuple[tuple[int, ...], ...]) -> Any:
        compiled = self._compiled.get(shapes)
        if compiled is None:
            model = self.core.read_model(str(self.xml))
            model.reshape({port: list(shape) for port, shape in
                           zip(model.inputs, shapes, strict=True)})
            compiled = self.core.compile_model(model, "CPU", self.config)
            self._compiled[shapes] = compiled
        return compiled

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        arrays = [t.detach().to("cpu", torch.float32).contiguous().numpy() for t in inputs]
        compiled = self._for(tuple(tuple(a.shape) for a in arrays))
        out = compiled(arrays)[compiled.output(0)]
        return torch.from_numpy(out.copy())


def _weights_bytes(xml: Path, precision: str) -> int:
    """What the compiled model holds: its fp32 weights, halved when it computes in bf16."""
    size = xml.with_suffix(".bin").stat().st_size
    return size // 2 if precision == "bf16" else size


class _Part(torch.nn.Module):
    """What a diffusers pipeline asks of a model besides calling it: config, dtype, device."""

    def __init__(self, config: dict[str, Any], warm_bytes: int) -> None:
        super().__init__()
        from diffusers.configuration_utils import FrozenDict

        self.config = FrozenDict(config)
        self.warm_bytes = warm_bytes  # engine.jobs.warm_cache counts this

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


class OpenVinoUNet(_Part):
    def __init__(self, part: CompiledPart, config: dict[str, Any]) -> None:
        super().__init__(config, _weights_bytes(part.xml, part.precision))
        self.part = part

    def set_attn_processor(self, *_args: Any, **_kwargs: Any) -> None:
        raise MyCanvasError("The OpenVINO UNet runs its converted graph as is: attention "
                            "processors need the torch backend")

    def forward(self, sample: torch.Tensor, timestep: Any, encoder_hidden_states: torch.Tensor,
                timestep_cond: Any = None, cross_attention_kwargs: Any = None,
                added_cond_kwargs: Any = None, return_dict: bool = True, **extra: Any) -> Any:
        if timestep_cond is not None or cross_attention_kwargs or added_cond_kwargs or extra:
            raise MyCanvasError("The OpenVINO UNet takes sample, timestep and text states "
                                "only; this pipeline needs the torch backend")
        if any(side % (SIDE_MULTIPLE // 8) for side in sample.shape[-2:]):
            raise MyCanvasError(f"The OpenVINO UNet needs a canvas side that is a multiple of "
                                f"{SIDE_MULTIPLE} px")
        steps = torch.as_tensor(timestep, dtype=torch.float32).reshape(-1)
        steps = steps.expand(sample.shape[0])
        out = self.part(sample, steps, encoder_hidden_states)
        if not return_dict:
            return (out,)
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        return UNet2DConditionOutput(sample=out)


class OpenVinoVae(_Part):
    def __init__(self, encoder: CompiledPart, decoder: CompiledPart,
                 config: dict[str, Any]) -> None:
        size = sum(_weights_bytes(p.xml, p.precision) for p in (encoder, decoder))
        super().__init__(config, size)
        self.encoder_part, self.decoder_part = encoder, decoder

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> Any:
        from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKLOutput
        from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

        dist = DiagonalGaussianDistribution(self.encoder_part(x))
        return AutoencoderKLOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True, generator: Any = None) -> Any:
        from diffusers.models.autoencoders.vae import DecoderOutput

        image = self.decoder_part(z)
        return DecoderOutput(sample=image) if return_dict else (image,)

    def forward(self, *_args: Any, **_kwargs: Any) -> Any:
        raise MyCanvasError("Call encode() or decode() on the OpenVINO VAE")


def read_configs(folder: Path) -> dict[str, dict[str, Any]]:
    """The torch models' configs the conversion stored (what the pipeline reads)."""
    data = json.loads((folder / "configs.json").read_text(encoding="utf-8"))
    return {"unet": dict(data["unet"]), "vae": dict(data["vae"])}


def compiled_parts(folder: Path, precision: str,
                   names: Sequence[str] = PARTS) -> dict[str, CompiledPart]:
    return {name: CompiledPart(folder / f"{name}.xml", precision) for name in names}


def openvino_inpaint_pipeline(folder: Path, model_path: Path, precision: str) -> Any:
    """The profile's inpainting pipeline (tokenizer, text encoder, scheduler from
    `model_path`) with the UNet and the VAE converted in `folder`, computing in `precision`
    ("bf16" or "f32")."""
    from engine.models.loaders import load_inpaint

    configs = read_configs(folder)
    parts = compiled_parts(folder, precision)
    base = load_inpaint(model_path, "cpu", "float32", without=("unet", "vae"))
    unet = OpenVinoUNet(parts[UNET], configs["unet"])
    vae = OpenVinoVae(parts[VAE_ENCODER], parts[VAE_DECODER], configs["vae"])
    components = {**base.components, "unet": unet, "vae": vae}
    pipe = type(base)(**components, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe
