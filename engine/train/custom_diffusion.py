"""Custom Diffusion: what trains, and one optimisation step.

Trainable, and nothing else:

* the key and value projections (`to_k`, `to_v`) of every cross-attention layer of the UNet,
  trained in place, kept in float32 (master weights) even when the rest runs in half
  precision. As in Custom Diffusion, the start token's key and value get no gradient: its
  text feature is the same for every prompt.
* one new embedding row per learned token (each concept's token, and Gen4Gen's global
  token), a parameter of its own appended after the tokenizer's vocabulary. The text
  encoder's embedding matrix itself is frozen and never handed to the optimiser, so weight
  decay or a stray gradient cannot move any other row (a known trap: AdamW's decay on the
  whole matrix moves every row). Each row starts as its init word's embedding (the mean
  over the word's sub-tokens).

Everything else (VAE, text encoder, the rest of the UNet) is frozen. Precision: float32 on
CPU and MPS; on CUDA the frozen weights are half precision and the step runs under autocast
(bf16 where the GPU has it, else fp16 with a gradient scaler).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine.errors import InputError
from engine.train.config import TrainConfig
from engine.train.data import step_generator

TOKEN_ROWS_KEY = "token_embeddings"


class ConceptTokenEmbedding(nn.Module):
    """The frozen token embedding, extended by trainable rows for ids past its vocabulary."""

    def __init__(self, base: nn.Embedding, new_rows: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        self.first_new_id = base.num_embeddings
        self.new_rows = nn.Parameter(new_rows.detach().float().clone())

    @property
    def weight(self) -> torch.Tensor:
        """The merged matrix (frozen rows, then the learned ones), for code that reads it."""
        return torch.cat([self.base.weight, self.new_rows.detach().to(self.base.weight.dtype)])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        is_new = input_ids >= self.first_new_id
        known = self.base(input_ids.clamp(max=self.first_new_id - 1))
        learned = self.new_rows[(input_ids - self.first_new_id).clamp(min=0)]
        return torch.where(is_new.unsqueeze(-1), learned.to(known.dtype), known)


@dataclass(frozen=True)
class Precision:
    device: torch.device
    weight_dtype: torch.dtype  # of the frozen weights
    autocast_dtype: torch.dtype | None  # None: no autocast (float32 throughout)

    @property
    def needs_scaler(self) -> bool:
        return self.autocast_dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def plan_precision(device: str, setting: str) -> Precision:
    """Mixed precision on CUDA only; `setting` is TrainConfig.mixed_precision."""
    dev = torch.device(device)
    if dev.type != "cuda" or setting == "no":
        return Precision(dev, torch.float32, None)
    if setting == "auto":
        setting = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = torch.bfloat16 if setting == "bf16" else torch.float16
    return Precision(dev, dtype, dtype)


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


def init_word_embedding(tokenizer: Any, table: torch.Tensor, word: str) -> torch.Tensor:
    ids = tokenizer(word, add_special_tokens=False).input_ids
    if not ids:
        raise InputError(f"The class word {word!r} has no tokens to start a concept from")
    return table[torch.tensor(ids)].float().mean(dim=0)


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
        self.tokens = tuple(tokens)
        self.token_ids = self._add_tokens(self.tokens, init_words)
        self.kv_layers = cross_attention_kv(self.unet)
        self._hooks: list[Any] = []
        for layer in self.kv_layers.values():
            layer.to(torch.float32).weight.requires_grad_(True)
            self._hooks.append(layer.register_forward_hook(_start_token_gets_no_gradient))
        if config.gradient_checkpointing:
            self.unet.enable_gradient_checkpointing()
        if self.channels_last:
            self.unet.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW([
            {"params": [layer.weight for layer in self.kv_layers.values()],
             "weight_decay": config.weight_decay},
            {"params": [self.embedding.new_rows], "weight_decay": 0.0},
        ], lr=config.effective_learning_rate)
        self.scaler = torch.amp.GradScaler("cuda") if precision.needs_scaler else None

    # ------------------------------------------------------------------ set-up

    def _add_tokens(self, tokens: Sequence[str], init_words: Sequence[str]) -> tuple[int, ...]:
        vocab = self.tokenizer.get_vocab()
        clash = [t for t in tokens if t in vocab]
        if clash:
            raise InputError(f"Token {clash[0]} is already a word of the tokenizer; "
                             "rename the concept's token")
        base = self.text_encoder.get_input_embeddings()
        if isinstance(base, ConceptTokenEmbedding):
            raise InputError("This text encoder already has learned tokens; load a fresh model")
        rows = torch.stack([init_word_embedding(self.tokenizer, base.weight.detach(), w)
                            for w in init_words])
        if self.tokenizer.add_tokens(list(tokens)) != len(tokens):
            raise InputError("Could not add the concept tokens to the tokenizer")
        ids = tuple(self.tokenizer.convert_tokens_to_ids(list(tokens)))
        if ids != tuple(range(base.num_embeddings, base.num_embeddings + len(tokens))):
            raise InputError("The tokenizer and the text encoder disagree on the vocabulary size")
        self.embedding = ConceptTokenEmbedding(base, rows.to(self.precision.device))
        self.text_encoder.set_input_embeddings(self.embedding)
        return ids

    @property
    def channels_last(self) -> bool:
        setting = self.config.channels_last
        return setting == "on" or (setting == "auto" and self.precision.device.type == "cuda")

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        yield from (layer.weight for layer in self.kv_layers.values())
        yield self.embedding.new_rows

    # ------------------------------------------------------------------ state

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Copies on the CPU: k/v weights by layer name, and the learned token rows."""
        state = {f"{name}.weight": layer.weight.detach().cpu().clone()
                 for name, layer in self.kv_layers.items()}
        state[TOKEN_ROWS_KEY] = self.embedding.new_rows.detach().cpu().clone()
        return state

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.trainable_state())
        if set(state) != expected:
            raise InputError("The checkpoint does not fit this model (different layers or tokens)")
        with torch.no_grad():
            for name, layer in self.kv_layers.items():
                layer.weight.copy_(state[f"{name}.weight"])
            self.embedding.new_rows.copy_(state[TOKEN_ROWS_KEY])

    def token_rows(self) -> dict[str, torch.Tensor]:
        rows = self.embedding.new_rows.detach().cpu()
        return {token: rows[i].clone() for i, token in enumerate(self.tokens)}

    # ------------------------------------------------------------------ the step

    def tokenize(self, prompts: Sequence[str]) -> torch.Tensor:
        return self.tokenizer(list(prompts), padding="max_length", truncation=True,
                              max_length=self.tokenizer.model_max_length,
                              return_tensors="pt").input_ids

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            return self.text_encoder(input_ids.to(self.precision.device))[0]

    def learning_rate(self, step: int) -> float:
        """Constant after a linear warm-up over the first lr_warmup_steps steps."""
        lr = self.config.effective_learning_rate
        warmup = self.config.lr_warmup_steps
        return lr * min(1.0, (step + 1) / warmup) if warmup else lr

    def loss(self, batch: Any, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """Diffusion loss of one micro-batch; every random draw comes from `generator`."""
        dev = self.precision.device
        n_inst = batch.latent_mean.shape[0]
        mean, std = batch.latent_mean, batch.latent_std
        if batch.prior_mean is not None:
            mean, std = torch.cat([mean, batch.prior_mean]), torch.cat([std, batch.prior_std])
        # Draws on the CPU generator, so a run is the same whatever the device.
        sample_noise = torch.randn(mean.shape, generator=generator)
        noise = torch.randn(mean.shape, generator=generator)
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (mean.shape[0],), generator=generator)
        latents = (mean + std * sample_noise) * self.vae.config.scaling_factor
        latents, noise, timesteps = latents.to(dev), noise.to(dev), timesteps.to(dev)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        states = self.encode_text(batch.input_ids)
        if batch.prior_states is not None:
            states = torch.cat([states, batch.prior_states.to(dev, states.dtype)])
        if self.channels_last:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        with self.precision.autocast():
            pred = self.unet(noisy.to(self.precision.weight_dtype), timesteps, states).sample
        error = (pred.float() - target.float()) ** 2
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
        cfg = self.config
        lr = self.learning_rate(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        totals: dict[str, float] = {}
        loss_sum = 0.0
        for micro in range(cfg.gradient_accumulation):
            generator = step_generator(cfg.seed, step, micro)
            batch = data.batch(step, micro, generator)
            loss, parts = self.loss(batch, generator)
            scaled = loss / cfg.gradient_accumulation
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            loss_sum += float(loss.detach())
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value / cfg.gradient_accumulation
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(list(self.trainable_parameters()),
                                                   cfg.max_grad_norm or math.inf)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        loss_value = loss_sum / cfg.gradient_accumulation
        if not math.isfinite(loss_value):
            raise InputError(f"The loss became {loss_value} at step {step + 1}; lower the "
                             "learning rate or use mixed_precision 'no'")
        return {"loss": loss_value, "lr": lr, "grad_norm": float(grad_norm), **totals}

    # ------------------------------------------------------------------ previews

    def sample(self, prompt: str, seed: int, steps: int, resolution: int) -> Any:
        """One image from the current weights (eval, no grad, own generator): a preview."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad(), self.precision.autocast():
            return self.pipe(prompt, num_inference_steps=steps, height=resolution,
                             width=resolution, generator=generator).images[0]


def weighted_mse(error: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of `error` weighted by `weights` (broadcast over channels)."""
    weights = weights.expand_as(error)
    return (error * weights).sum() / weights.sum().clamp(min=1e-8)

