"""The model an extraction trains, its M-step, and the attention maps its E-step reads.

What trains is the fine-tuning stage's core (engine.train.FineTuningModel): one new
embedding row per concept token (and the background token, when asked; the embedding matrix
stays frozen and out of the optimiser, which is what Break-A-Scene's "restore every other
row after each step" is for), and in phase two also the k/v of every cross-attention layer.
Each phase has its own AdamW
(engine.train.OptimiserStep): phase one over the rows at token_learning_rate, phase two
over rows and k/v at weights_learning_rate, started fresh at the phase boundary.

One M-step (batch 1, the photo): a random subset of the tokens (engine.extract.losses), the
photo or its mirror with its masks, a latent sample from the cached VAE statistics, the
prompt naming the subset, one UNet pass with the attention of the chosen layers recorded
(engine.extract.attention), and loss = masked diffusion loss + λ·attention loss. Every
random draw comes from the step's own generator (seed, step), so a resumed run repeats an
uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from engine.extract.attention import AttentionCapture
from engine.extract.config import ExtractConfig
from engine.extract.losses import (
    area_resize,
    attention_loss,
    masked_diffusion_loss,
    sample_subset,
    union_mask,
)
from engine.extract.prompts import TokenisedPrompt, concept_prompt
from engine.train import (
    ConceptRef,
    FineTuningModel,
    OptimiserStep,
    Precision,
    draw_latents,
    encode_latent_stats,
    noised_prediction,
    step_generator,
)


class ExtractionModel(FineTuningModel):
    """A StableDiffusionPipeline set up for EM extraction (see the module doc). `refs` are
    the concepts in order, then the background token's, if any."""

    def __init__(self, pipe: Any, refs: Sequence[ConceptRef], precision: Precision,
                 cfg: ExtractConfig) -> None:
        self.cfg = cfg
        self.refs = list(refs)
        super().__init__(pipe, [r.token for r in self.refs], [r.class_word for r in self.refs],
                         precision, cfg.gradient_checkpointing)
        self.phase = 0
        self.optimiser: OptimiserStep = self._start_phase(1)
        self.latent_mean: torch.Tensor | None = None  # [2, C, h, w]: photo, mirror
        self.latent_std: torch.Tensor | None = None
        self._latent_masks: torch.Tensor | None = None  # [2, tokens, h, w]
        self._map_masks: torch.Tensor | None = None  # [2, tokens, m, m]
        self._prompts: dict[tuple[int, ...], TokenisedPrompt] = {}

    # ------------------------------------------------------------------ phases

    def _start_phase(self, phase: int) -> OptimiserStep:
        cfg = self.cfg
        for layer in self.kv_layers.values():
            layer.weight.requires_grad_(phase == 2)  # no stray k/v gradients in phase one
        if phase == 1:
            groups = [{"params": [self.added.rows], "weight_decay": 0.0}]
            lr = cfg.token_learning_rate
        else:
            groups = [{"params": [layer.weight for layer in self.kv_layers.values()],
                       "weight_decay": cfg.weight_decay},
                      {"params": [self.added.rows], "weight_decay": 0.0}]
            lr = cfg.weights_learning_rate
        self.phase = phase
        self.optimiser = OptimiserStep(groups, lr, max_grad_norm=cfg.max_grad_norm,
                                       fp16_scaler=self.precision.needs_scaler)
        return self.optimiser

    def phase_of(self, steps_done: int) -> int:
        """The phase whose optimiser holds the state after `steps_done` steps."""
        return 2 if steps_done > self.cfg.phase_two_from else 1

    def enter_phase(self, phase: int) -> None:
        if phase != self.phase:
            self._start_phase(phase)

    # ------------------------------------------------------------------ the photo

    def encode_photo(self, square: np.ndarray) -> None:
        """Cache the VAE statistics of the photo (uint8 [side, side, 3]) and its mirror."""
        from PIL import Image

        mean, std = encode_latent_stats(self.vae, [Image.fromarray(square)],
                                        self.precision.device, self.precision.weight_dtype)
        self.latent_mean, self.latent_std = mean[0], std[0]

    @property
    def latent_side(self) -> int:
        assert self.latent_mean is not None, "encode_photo first"
        return int(self.latent_mean.shape[-1])

    def set_masks(self, masks: np.ndarray, map_side: int) -> None:
        """The current masks, one per token ([tokens, side, side] bool), as the M-step's
        loss masks at latent size and attention targets at map size (both also mirrored)."""
        dev = self.precision.device
        both = torch.from_numpy(np.stack([masks, masks[..., ::-1]]).copy())  # [2, T, S, S]
        self._latent_masks = torch.stack([area_resize(m, self.latent_side) for m in both]).to(dev)
        self._map_masks = torch.stack([area_resize(m, map_side) for m in both]).to(dev)

    def prompt(self, order: Sequence[int]) -> TokenisedPrompt:
        """The prompt naming the tokens `order` (in that order); made once per order."""
        key = tuple(order)
        if key not in self._prompts:
            self._prompts[key] = concept_prompt(self.tokenizer, [self.refs[i] for i in key])
        return self._prompts[key]

    def encode_prompt(self, ids: list[int]) -> torch.Tensor:
        return self.encode_text(torch.tensor([ids]))

    # ------------------------------------------------------------------ the M-step

    def step_loss(self, step: int, capture: AttentionCapture
                  ) -> tuple[torch.Tensor, dict[str, float]]:
        assert self.latent_mean is not None and self.latent_std is not None
        assert self._latent_masks is not None and self._map_masks is not None
        gen = step_generator(self.cfg.seed, step, 0)
        order = sample_subset(len(self.refs), gen)
        flip = int(torch.randint(0, 2, (1,), generator=gen)) if self.cfg.hflip else 0
        latents = draw_latents(self.latent_mean[flip:flip + 1], self.latent_std[flip:flip + 1],
                               gen, self.vae.config.scaling_factor)
        prompt = self.prompt(order)
        states = self.encode_prompt(prompt.ids)
        with capture.recording():
            out = noised_prediction(self.unet, self.noise_scheduler, latents, states, gen,
                                    precision=self.precision)
        maps = capture.token_maps(prompt.spans)[0].float()
        diffusion = masked_diffusion_loss(out.prediction, out.target,
                                          union_mask(self._latent_masks[flip], order))
        attention = attention_loss(maps, self._map_masks[flip][order])
        loss = diffusion + self.cfg.attention_loss_weight * attention
        return loss, {"diffusion_loss": float(diffusion.detach()),
                      "attention_loss": float(attention.detach()),
                      "tokens_sampled": float(len(order)), "flipped": float(flip)}

    def train_step(self, step: int, capture: AttentionCapture) -> dict[str, float]:
        """Optimiser step `step` (0-based), in the phase it belongs to."""
        self.enter_phase(2 if step >= self.cfg.phase_two_from else 1)
        first = 0 if self.phase == 1 else self.cfg.phase_two_from
        record = self.optimiser.step(step - first, lambda _m: self.step_loss(step, capture))
        return {**record, "phase": float(self.phase)}

    # ------------------------------------------------------------------ the E-step's maps

    def photo_attention(self, prompt: TokenisedPrompt, capture: AttentionCapture,
                        generator: torch.Generator, masks: np.ndarray | None = None
                        ) -> tuple[np.ndarray, list[float]]:
        """Attention maps [len(prompt.spans), m, m] on the photo: the mean over the E-step's
        noise levels, photo and mirror (maps of the mirror flipped back), in one batch. With
        `masks` ([spans, side, side]), also each one's diffusion loss inside its mask."""
        assert self.latent_mean is not None
        flips = (0, 1) if self.cfg.hflip else (0,)
        timesteps = [t for t in self.cfg.estep_timesteps for _ in flips]
        which = [f for _ in self.cfg.estep_timesteps for f in flips]
        latents = self.latent_mean[which] * self.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=generator)
        t = torch.tensor(timesteps)
        noisy = self.noise_scheduler.add_noise(latents, noise, t)
        dev = self.precision.device
        states = self.encode_prompt(prompt.ids).expand(len(which), -1, -1)
        with torch.no_grad(), capture.recording(), self.precision.autocast():
            pred = self.unet(noisy.to(dev, self.precision.weight_dtype), t.to(dev),
                             states).sample.float().cpu()
        maps = capture.token_maps(prompt.spans).float().cpu()  # [B, n, m, m]
        maps = torch.stack([m.flip(-1) if f else m for m, f in zip(maps, which, strict=True)])
        losses: list[float] = []
        if masks is not None:
            target = noise
            if self.noise_scheduler.config.prediction_type == "v_prediction":
                target = self.noise_scheduler.get_velocity(latents, noise, t)
            both = torch.from_numpy(np.stack([masks, masks[..., ::-1]]).copy())
            small = torch.stack([area_resize(m, self.latent_side) for m in both])  # [2, n, h, w]
            losses = [float(masked_diffusion_loss(pred, target, small[which, i][:, None]))
                      for i in range(masks.shape[0])]
        return maps.mean(dim=0).numpy(), losses
