"""Custom Diffusion: its optimiser, its loss, and one optimisation step.

What trains (the cross-attention k/v and one row per new token: each concept's token, and
Gen4Gen's global token) is engine.train.fine_tuning's core, shared with EM extraction.
Precision: see engine.train.precision. The loss is the diffusion MSE
(engine.train.diffusion_step), weighted by the object masks when masked_loss is on, plus
prior preservation on class images; the step is engine.train.optimiser's (AdamW, weight
decay on the k/v weights only).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from engine.train.config import TrainConfig
from engine.train.data import step_generator
from engine.train.diffusion_step import draw_latents, noised_prediction, weighted_mse
from engine.train.fine_tuning import FineTuningModel
from engine.train.optimiser import OptimiserStep
from engine.train.precision import Precision


class CustomDiffusionModel(FineTuningModel):
    """A loaded StableDiffusionPipeline set up for Custom Diffusion (see the module doc)."""

    def __init__(self, pipe: Any, tokens: Sequence[str], init_words: Sequence[str],
                 precision: Precision, config: TrainConfig) -> None:
        self.config = config
        super().__init__(pipe, tokens, init_words, precision, config.gradient_checkpointing)
        self.tokens, self.token_ids, self.embedding = \
            self.added.tokens, self.added.ids, self.added.embedding
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

    # ------------------------------------------------------------------ the step

    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(prompts), padding="max_length", truncation=True,
                              max_length=self.tokenizer.model_max_length,
                              return_tensors="pt").input_ids

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
