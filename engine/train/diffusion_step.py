"""The diffusion forward pass of a training step, kept apart from any loss.

`noised_prediction` draws the noise and the timesteps, noises the latents and runs the UNet
once; it returns the prediction with its target and leaves the loss to the caller. A trainer
can so capture the cross-attention maps of the same forward pass (an attention processor,
or `cross_attention_kwargs`) and add its own terms: Custom Diffusion composes a
(mask-)weighted MSE and prior preservation; EM concept extraction a masked loss and an
attention loss.

Every random draw is made on the caller's CPU generator, in a fixed order (latent sample,
noise, timesteps), so a step is the same on every device and a resumed run repeats an
uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from engine.train.precision import Precision


@dataclass(frozen=True)
class NoisedPrediction:
    prediction: torch.Tensor  # the UNet's output, in its compute dtype
    target: torch.Tensor  # what it should have predicted: the noise, or v for v-prediction
    timesteps: torch.Tensor  # [B]
    noise: torch.Tensor
    noisy_latents: torch.Tensor  # the UNet's input


def draw_latents(mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator,
                 scaling_factor: float) -> torch.Tensor:
    """A latent sample from cached VAE statistics (mean + std * noise), scaled for the UNet."""
    return (mean + std * torch.randn(mean.shape, generator=generator)) * scaling_factor


def noised_prediction(unet: Any, noise_scheduler: Any, latents: torch.Tensor,
                      text_states: torch.Tensor, generator: torch.Generator, *,
                      precision: Precision | None = None, channels_last: bool = False,
                      cross_attention_kwargs: dict[str, Any] | None = None,
                      ) -> NoisedPrediction:
    """Noise `latents` at random timesteps and predict with `unet` conditioned on
    `text_states`; `noise_scheduler` is the training scheduler (e.g. DDPMScheduler)."""
    if precision is None:
        precision = Precision(latents.device, torch.float32, None)
    dev = precision.device
    # Drawn on the CPU generator, so a run is the same whatever the device.
    noise = torch.randn(latents.shape, generator=generator)
    steps = noise_scheduler.config.num_train_timesteps
    timesteps = torch.randint(0, steps, (latents.shape[0],), generator=generator)
    latents, noise, timesteps = latents.to(dev), noise.to(dev), timesteps.to(dev)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    if channels_last:
        noisy = noisy.contiguous(memory_format=torch.channels_last)
    with precision.autocast():
        prediction = unet(noisy.to(precision.weight_dtype), timesteps, text_states.to(dev),
                          cross_attention_kwargs=cross_attention_kwargs).sample
    return NoisedPrediction(prediction, target, timesteps, noise, noisy)


def weighted_mse(error: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of `error` weighted by `weights` (broadcast over channels)."""
    weights = weights.expand_as(error)
    return (error * weights).sum() / weights.sum().clamp(min=1e-8)
