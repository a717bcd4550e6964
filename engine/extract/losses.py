"""The M-step's arithmetic: which tokens a step trains, its loss mask, and its two losses.

* `sample_subset`: as Break-A-Scene, a size k uniform in 1..n, then k distinct tokens in a
  random order (the order they take in the prompt). So each size is equally likely and,
  within a size, each choice: with n = 3, P(one given token alone) = 1/9, P(a given pair) =
  1/9, P(all three) = 1/3.
* `union_mask`: the loss mask of a step, the union (maximum) of the sampled tokens' masks.
* `masked_diffusion_loss`: the squared error weighted by that mask and divided by the
  mask's area. Break-A-Scene multiplies prediction and target by the mask and takes the mean
  over the whole image, which scales a concept's loss with its size: a small concept would
  then learn slower and be outweighed by the (size-free) attention loss. Dividing by the
  area, as the diffusers Custom Diffusion example does, gives every subset the same weight.
* `attention_loss`: for each sampled token, its attention map (already averaged over heads
  and layers) divided by its maximum, against its mask at the map's size (area-averaged:
  the part of each cell the mask covers); mean squared error, summed over the tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def sample_subset(count: int, generator: torch.Generator) -> list[int]:
    """A random non-empty subset of range(count), in a random order (see the module doc)."""
    if count < 1:
        raise ValueError("no tokens to sample from")
    size = int(torch.randint(1, count + 1, (1,), generator=generator))
    return torch.randperm(count, generator=generator)[:size].tolist()


def union_mask(masks: torch.Tensor, chosen: Sequence[int]) -> torch.Tensor:
    """The pixel-wise maximum of masks[i] for i in `chosen`: [..., h, w] from [n, ..., h, w]."""
    return masks[list(chosen)].amax(dim=0)


def area_resize(masks: torch.Tensor, side: int) -> torch.Tensor:
    """Masks [n, H, W] (bool or 0..1) as [n, side, side] fractions of each cell covered."""
    return F.interpolate(masks.float()[:, None], size=(side, side), mode="area")[:, 0]


def masked_diffusion_loss(prediction: torch.Tensor, target: torch.Tensor,
                          mask: torch.Tensor) -> torch.Tensor:
    """Squared error weighted by `mask` ([h, w] or [B, 1, h, w], broadcast over channels),
    divided by the mask's area (over all channels); 0 for an empty mask."""
    error = (prediction.float() - target.float()) ** 2
    weights = mask.float().expand_as(error)
    return (error * weights).sum() / weights.sum().clamp(min=1e-8)


def attention_loss(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Sum over tokens of MSE(map / max(map), mask): maps and masks [tokens, m, m]."""
    peak = maps.flatten(1).amax(dim=1).clamp(min=1e-8)
    normalised = maps / peak[:, None, None]
    return ((normalised - masks.float()) ** 2).flatten(1).mean(dim=1).sum()
