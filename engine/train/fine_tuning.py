"""The fine-tuning core that Custom Diffusion training and EM extraction share.

What trains, and nothing else:

* the key and value projections (`to_k`, `to_v`) of every cross-attention layer of the UNet,
  trained in place, kept in float32 (master weights) even when the rest runs in half
  precision. As in Custom Diffusion, the start token's key and value get no gradient: its
  text feature is the same for every prompt.
* one new embedding row per learned token, added by engine.train.tokens; the embedding
  matrix stays frozen and out of the optimiser.

Everything else (VAE, text encoder, the rest of the UNet) is frozen. A run's trainable state
(what a checkpoint holds) is the k/v weights by layer name and the token rows.

Loading: `load_base_pipeline` plans the precision from the setting and the device plan (so a
CPU with bf16 units computes in bf16 autocast for either trainer: engine.train.precision),
makes room among the warm models for the pipeline's weights and loads a fresh pipeline (the
run changes it, so it is never the warm cache's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.errors import InputError
from engine.train.precision import Precision, plan_precision
from engine.train.tokens import add_concept_tokens

TOKEN_ROWS_KEY = "token_embeddings"


def cross_attention_kv(unet: nn.Module) -> dict[str, nn.Linear]:
    """'<attention module>.to_k' / '.to_v' -> the Linear, for every cross-attention layer."""
    layers: dict[str, nn.Linear] = {}
    for name, module in unet.named_modules():
        if getattr(module, "is_cross_attention", False) and hasattr(module, "to_k"):
            layers[f"{name}.to_k"] = module.to_k
            layers[f"{name}.to_v"] = module.to_v
    if not layers:
        raise InputError("This UNet has no cross-attention layers to fine-tune")
    return layers


def _start_token_gets_no_gradient(_module: nn.Module, _inputs: Any,
                                  output: torch.Tensor) -> torch.Tensor | None:
    if not torch.is_grad_enabled() or output.dim() != 3 or output.shape[1] < 2:
        return None
    return torch.cat([output[:, :1].detach(), output[:, 1:]], dim=1)


def train_cross_attention_kv(unet: nn.Module) -> tuple[dict[str, nn.Linear], list[Any]]:
    """Make the k/v of every cross-attention layer trainable: float32 master weights that
    require gradients, the start token's key and value kept out of the gradient. Returns the
    layers (as cross_attention_kv) and the hook handles."""
    layers = cross_attention_kv(unet)
    hooks = []
    for layer in layers.values():
        layer.to(torch.float32).weight.requires_grad_(True)
        hooks.append(layer.register_forward_hook(_start_token_gets_no_gradient))
    return layers, hooks


class FineTuningModel:
    """A loaded StableDiffusionPipeline with new tokens and trainable cross-attention k/v
    (see the module doc); a trainer adds its optimiser and its loss."""

    def __init__(self, pipe: Any, tokens: Sequence[str], init_words: Sequence[str],
                 precision: Precision, gradient_checkpointing: bool) -> None:
        from diffusers import DDPMScheduler

        self.pipe, self.precision = pipe, precision
        self.unet, self.vae, self.text_encoder = pipe.unet, pipe.vae, pipe.text_encoder
        self.tokenizer = pipe.tokenizer
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        for model in (self.unet, self.vae, self.text_encoder):
            model.requires_grad_(False)
            model.eval()
        self.added = add_concept_tokens(self.tokenizer, self.text_encoder, tokens, init_words,
                                        precision.device)
        self.kv_layers, self._hooks = train_cross_attention_kv(self.unet)
        if gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Copies on the CPU: k/v weights by layer name, and the learned token rows."""
        state = {f"{name}.weight": layer.weight.detach().cpu().clone()
                 for name, layer in self.kv_layers.items()}
        state[TOKEN_ROWS_KEY] = self.added.rows.detach().cpu().clone()
        return state

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        expected = {f"{name}.weight" for name in self.kv_layers} | {TOKEN_ROWS_KEY}
        if set(state) != expected:
            raise InputError("The checkpoint does not fit this model (different layers or tokens)")
        with torch.no_grad():
            for name, layer in self.kv_layers.items():
                layer.weight.copy_(state[f"{name}.weight"])
            self.added.rows.copy_(state[TOKEN_ROWS_KEY])

    def token_rows(self) -> dict[str, torch.Tensor]:
        """Each learned token's row (for engine.train.export_concepts)."""
        return self.added.rows_by_token()

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The text encoder's hidden states of token ids [batch, length], in the run's
        autocast."""
        with self.precision.autocast():
            return self.text_encoder(input_ids.to(self.precision.device))[0]


@dataclass(frozen=True)
class BasePipeline:
    pipe: Any
    precision: Precision
    folder: Path


def pipeline_bytes(folder: Path) -> int:
    """The size of a pipeline's weight files: what loading it will take, about."""
    return sum(p.stat().st_size for p in folder.rglob("*.safetensors") if p.is_file())


def load_base_pipeline(ctx: Any, plan: Any, folder: Path, mixed_precision: str, steps: int,
                       doing: str) -> BasePipeline:
    """The base model at `folder`, fresh, for a run on the device `plan`
    (engine.device.DevicePlan) with the `mixed_precision` setting; `doing` ("Training",
    "Extraction") names the run in the precision's log line."""
    from engine.models.loaders import load_text_to_image

    precision = plan_precision(plan.device, mixed_precision, plan.autocast_dtype)
    if mixed_precision in ("fp16", "bf16") and precision.autocast_dtype is None:
        ctx.log(f"{mixed_precision} needs a CUDA GPU or (bf16) a CPU with bf16 units that "
                f"the settings do not hold to float32; {doing.lower()} in float32 on "
                f"{plan.device}")
    elif precision.autocast_dtype is not None:
        ctx.log(f"{doing} computes in {precision.computes_in} autocast, trained weights in "
                f"float32 ({plan.describe()})")
    ctx.progress(0, steps, "loading the base model")
    # It needs the room the warm models hold on this device (the inpainter, above all).
    ctx.models.make_room(plan.device, pipeline_bytes(folder))
    pipe = load_text_to_image(folder, plan.device, precision.weight_dtype)
    return BasePipeline(pipe, precision, folder)
