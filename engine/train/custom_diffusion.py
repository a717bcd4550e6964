"""Custom Diffusion: what trains, its loss, and one optimisation step.

Trainable, and nothing else:

* the key and value projections (`to_k`, `to_v`) of every cross-attention layer of the UNet,
  trained in place, kept in float32 (master weights) even when the rest runs in half
  precision. As in Custom Diffusion, the start token's key and value get no gradient: its
  text feature is the same for every prompt.
* one new embedding row per learned token (each concept's token, and Gen4Gen's global
  token), added by engine.train.tokens; the embedding matrix stays frozen and out of the
  optimiser.

Everything else (VAE, text encoder, the rest of the UNet) is frozen. Precision: see
engine.train.precision. The loss is the diffusion MSE (engine.train.diffusion_step), weighted
by the object masks when masked_loss is on, plus prior preservation on class images; the
step is engine.train.optimiser's (AdamW, weight decay on the k/v weights only).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from engine.errors import InputError
from engine.train.config import TrainConfig
from engine.train.data import step_generator
from engine.train.diffusion_step import draw_latents, noised_prediction, weighted_mse
from engine.train.optimiser import OptimiserStep
from engine.train.precision import Precision
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


class CustomDiffusionModel:
    """A loaded StableDiffusionPipeline set up for Custom Diffusion (see the module doc)."""

    def __init__(self, pipe: Any, tokens: Sequence[str], init_words: Sequence[str],
                 precision: Precision, config: TrainConfig) -> None:
        from diffusers import DDPMScheduler

        self.pipe, self.config, self.precision = pipe, config, precision
        self.unet, self.vae, self.text_encoder = pipe.unet, pipe.vae, pipe.text_encoder
        self.tokenizer = pipe.tokenizer
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        for model in (self.unet, self.vae, self.text_encoder):
            model.requires_grad_(False)
            model.eval()
        self.added = add_concept_tokens(self.tokenizer, self.text_encoder, tokens, init_words,
                                        precision.device)
        self.tokens, self.token_ids, self.embedding = \
            self.added.tokens, self.added.ids, self.added.embedding
        self.kv_layers, self._hooks = train_cross_attention_kv(self.unet)
        if config.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        if self.channels_last:
            self.unet.to(memory_format=torch.channels_last)
        self.optimiser = OptimiserStep([
            {"params": [layer.weight for layer in self.kv_layers.values()],
             "weight_decay": config.weight_decay},
            {"params": [self.added.rows], "weight_decay": 0.0},
        ], config.effective_learning_rate, accumulation=config.gradient_accumulation,
            max_grad_norm=config.max_grad_norm, warmup_steps=config.lr_warmup_steps,
            fp16_scaler=precision.needs_scaler)

    @property
    def channels_last(self) -> bool:
        setting = self.config.channels_last
        return setting == "on" or (setting == "auto" and self.precision.device.type == "cuda")

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.optimiser.parameters

    # ------------------------------------------------------------------ state

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Copies on the CPU: k/v weights by layer name, and the learned token rows."""
        state = {f"{name}.weight": layer.weight.detach().cpu().clone()
                 for name, layer in self.kv_layers.items()}
        state[TOKEN_ROWS_KEY] = self.added.rows.detach().cpu().clone()
        return state

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.trainable_state())
        if set(state) != expected:
            raise InputError("The checkpoint does not fit this model (different layers or tokens)")
        with torch.no_grad():
            for name, layer in self.kv_layers.items():
                layer.weight.copy_(state[f"{name}.weight"])
            self.added.rows.copy_(state[TOKEN_ROWS_KEY])

    def token_rows(self) -> dict[str, torch.Tensor]:
        return self.added.rows_by_token()

    # ------------------------------------------------------------------ the step

    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(prompts), padding="max_length", truncation=True,
                              max_length=self.tokenizer.model_max_length,
                              return_tensors="pt").input_ids

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return self.text_encoder(input_ids.to(self.precision.device))[0]

    def loss(self, batch: Any, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """Diffusion loss of one micro-batch; every random draw comes from `generator`."""
        dev = self.precision.device
        n_inst = batch.latent_mean.shape[0]
        mean, std = batch.latent_mean, batch.latent_std
        if batch.prior_mean is not None:
            mean, std = torch.cat([mean, batch.prior_mean]), torch.cat([std, batch.prior_std])
        latents = draw_latents(mean, std, generator, self.vae.config.scaling_factor)
        states = self.encode_text(batch.input_ids)
        if batch.prior_states is not None:
            states = torch.cat([states, batch.prior_states.to(dev, states.dtype)])
        out = noised_prediction(self.unet, self.noise_scheduler, latents, states, generator,
                                precision=self.precision, channels_last=self.channels_last)
        error = (out.prediction.float() - out.target.float()) ** 2
        if batch.weights is not None:
            instance = weighted_mse(error[:n_inst], batch.weights.to(dev))
        else:
            instance = error[:n_inst].mean()
        parts = {"instance_loss": float(instance.detach())}
        total = instance
        if batch.prior_mean is not None:
            prior = error[n_inst:].mean()
            total = instance + self.config.prior_loss_weight * prior
            parts["prior_loss"] = float(prior.detach())
        return total, parts

    def train_step(self, step: int, data: Any) -> dict[str, float]:
        """One optimiser step (over gradient_accumulation micro-batches) at index `step`."""

        def micro_loss(micro: int) -> tuple[torch.Tensor, dict[str, float]]:
            generator = step_generator(self.config.seed, step, micro)
            return self.loss(data.batch(step, micro, generator), generator)

        return self.optimiser.step(step, micro_loss)

    # ------------------------------------------------------------------ previews

    def sample(self, prompt: str, seed: int, steps: int, resolution: int,
               step_end: Any = None) -> Any:
        """One image from the current weights (eval, no grad, own generator): a preview.
        `step_end` is the pipeline's callback_on_step_end (progress, cancel)."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad(), self.precision.autocast():
            return self.pipe(prompt, num_inference_steps=steps, height=resolution,
                             width=resolution, generator=generator,
                             callback_on_step_end=step_end).images[0]
