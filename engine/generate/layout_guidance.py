"""Layout guidance: steer each concept's cross-attention towards its box for the first part of
denoising, so two personal concepts do not blend into each other.

The modulation is DenseDiffusion's (Kim et al., ICCV 2023; naver-ai/DenseDiffusion), in its
cross-attention-only form. On the conditional half of the batch, for the tokens of a concept
(its token and its class word, every time the prompt names them), the attention logits S
(one row per latent pixel, one column per token) become

    S + c·w·R·(rowmax(S) − S) − c·w·(1 − R)·(S − rowmin(S))

where R is 1 inside the concept's box and 0 outside, w = strength × size term, the size term
is DenseDiffusion's (1 − 1.5·box area, floored at 0: small boxes are pushed harder), and
c = (t/1000)^5 fades the push as the timestep t falls. Other tokens are left alone. Only the
first `guided_fraction` of the UNet calls are modulated; after them (and for the
unconditional half at all times) the layer runs its own processor, untouched.

`LayoutAttnProcessor` wraps a cross-attention layer's own processor and takes no call
arguments beyond diffusers' standard ones (diffusers drops unknown `cross_attention_kwargs`
with a mere warning): the per-call state (timestep, step, which half is conditional) lives
in the shared `LayoutGuidance`, which a forward pre-hook on the UNet updates.

An `AttentionRecord` may be attached to measure what the guidance does: per UNet call and
concept, the share of the concept tokens' attention that falls inside its box, with and
without the modulation (from the same logits) — engine.generate.measure uses it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from engine.generate.recipe import LayoutBox


@dataclass(frozen=True)
class Region:
    """A concept's box and the prompt positions of its tokens."""

    box: LayoutBox
    positions: tuple[int, ...]


def box_mask(box: LayoutBox, rows: int, cols: int) -> Any:
    """(rows, cols) bool: the cells whose centres lie in the box (at least the centre cell)."""
    import torch

    ys = (torch.arange(rows, dtype=torch.float64) + 0.5) / rows
    xs = (torch.arange(cols, dtype=torch.float64) + 0.5) / cols
    inside_y = (ys >= box.y) & (ys < box.y + box.h)
    inside_x = (xs >= box.x) & (xs < box.x + box.w)
    mask = inside_y[:, None] & inside_x[None, :]
    if not bool(mask.any()):
        cy = min(rows - 1, int((box.y + box.h / 2) * rows))
        cx = min(cols - 1, int((box.x + box.w / 2) * cols))
        mask[cy, cx] = True
    return mask


def size_term(area: float) -> float:
    return max(0.0, 1.0 - 1.5 * area)


@dataclass
class AttentionRecord:
    """Per UNet call: for each region token, the mean share of its attention inside its box
    (over layers, heads and the token's positions), with and without the modulation."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def add(self, step: int, guided: bool, token: str, layer: str, inside: float,
            inside_unmodulated: float) -> None:
        if not self.calls or self.calls[-1]["step"] != step:
            self.calls.append({"step": step, "guided": guided, "tokens": {}})
        entry = self.calls[-1]["tokens"].setdefault(token, {"inside": [], "unmodulated": [],
                                                            "layers": []})
        entry["inside"].append(inside)
        entry["unmodulated"].append(inside_unmodulated)
        entry["layers"].append(layer)


class LayoutGuidance:
    """The state one generation's processors share: regions, masks per attention size, the
    current call."""

    def __init__(self, regions: Sequence[tuple[str, Region]], strength: float,
                 guided_fraction: float, latent_size: tuple[int, int], text_length: int,
                 classifier_free: bool, record: AttentionRecord | None = None) -> None:
        import torch

        self.regions = list(regions)
        self.strength = float(strength)
        self.guided_fraction = float(guided_fraction)
        self.classifier_free = classifier_free
        self.record = record
        self.step = -1
        self.timestep = 1000.0
        self.guided_steps = 0
        self.cond_start = 0
        # Per attention size N = rows·cols: R (N, T) as 0/1, w (T,), and each region's mask.
        self.masks: dict[int, Any] = {}
        self.weights: dict[int, Any] = {}
        self.region_masks: dict[int, list[Any]] = {}
        rows, cols = latent_size
        for _level in range(5):  # the UNet halves its sizes (rounding up) per level
            r_mask = torch.zeros(rows * cols, text_length)
            weight = torch.zeros(text_length)
            per_region = []
            for _token, region in self.regions:
                mask = box_mask(region.box, rows, cols).reshape(-1)
                per_region.append(mask)
                positions = [p for p in region.positions if p < text_length]
                r_mask[:, positions] = torch.maximum(r_mask[:, positions],
                                                     mask[:, None].float())
                weight[positions] = size_term(float(mask.float().mean()))
            self.masks[rows * cols] = r_mask
            self.weights[rows * cols] = weight
            self.region_masks[rows * cols] = per_region
            rows, cols = (rows + 1) // 2, (cols + 1) // 2

    def begin_call(self, timestep: float, batch: int, total_calls: int) -> None:
        """Before each UNet call (a forward pre-hook)."""
        self.step += 1
        self.timestep = float(timestep)
        self.guided_steps = math.ceil(self.guided_fraction * total_calls - 1e-9)
        self.cond_start = batch // 2 if self.classifier_free else 0

    @property
    def active(self) -> bool:
        return self.strength > 0 and 0 <= self.step < self.guided_steps

    @property
    def time_scale(self) -> float:
        return self.strength * (max(0.0, self.timestep) / 1000.0) ** 5

    def modulate(self, scores: torch.Tensor, size: int) -> torch.Tensor:
        """DenseDiffusion's modulation of the conditional rows of `scores` (B, h, N, T)."""
        cond = scores[self.cond_start:]
        r_mask = self.masks[size].to(scores.device, scores.dtype)
        weight = self.weights[size].to(scores.device, scores.dtype) * self.time_scale
        row_max = cond.amax(dim=-1, keepdim=True)
        row_min = cond.amin(dim=-1, keepdim=True)
        push = weight * (r_mask * (row_max - cond) - (1 - r_mask) * (cond - row_min))
        if not self.cond_start:
            return cond + push
        import torch

        return torch.cat([scores[:self.cond_start], cond + push])


class LayoutAttnProcessor:
    """A cross-attention layer's processor, with DenseDiffusion's modulation while guiding."""

    def __init__(self, inner: Any, guidance: LayoutGuidance, name: str) -> None:
        self.inner = inner
        self.guidance = guidance
        self.name = name

    def __call__(self, attn: Any, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None,
                 temb: torch.Tensor | None = None) -> torch.Tensor:
        g = self.guidance
        size = hidden_states.shape[1] if hidden_states.ndim == 3 else \
            hidden_states.shape[2] * hidden_states.shape[3]
        explicit = (g.active or g.record is not None) and encoder_hidden_states is not None \
            and attention_mask is None and size in g.masks and attn.group_norm is None \
            and attn.spatial_norm is None and g.masks[size].shape[1] == \
            encoder_hidden_states.shape[1]
        if not explicit:
            extra = {} if temb is None else {"temb": temb}
            return self.inner(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                              attention_mask=attention_mask, **extra)
        assert encoder_hidden_states is not None
        return self._modulated(attn, hidden_states, encoder_hidden_states, size)

    def _modulated(self, attn: Any, hidden_states: torch.Tensor,
                   encoder_hidden_states: torch.Tensor, size: int) -> torch.Tensor:
        g = self.guidance
        residual = hidden_states
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        batch = hidden_states.shape[0]
        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        scores = (query @ key.transpose(-1, -2)).float() * attn.scale  # (B, heads, N, T)
        modulated = g.modulate(scores, size) if g.active else scores
        probs = modulated.softmax(dim=-1)
        if g.record is not None:
            self._record(scores, probs, size)
        out = probs.to(value.dtype) @ value
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(residual.shape)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _record(self, scores: torch.Tensor, probs: torch.Tensor, size: int) -> None:
        g = self.guidance
        assert g.record is not None
        plain = scores[g.cond_start:].softmax(dim=-1)
        guided = probs[g.cond_start:]
        for (token, region), mask in zip(g.regions, g.region_masks[size], strict=True):
            positions = [p for p in region.positions if p < scores.shape[-1]]
            if not positions:
                continue
            inside = mask.to(scores.device)
            shares = []
            for attention in (guided, plain):
                maps = attention[..., positions]  # (B, heads, N, P)
                total = maps.sum(dim=2).clamp_min(1e-12)
                shares.append(float((maps[:, :, inside].sum(dim=2) / total).mean()))
            g.record.add(g.step, g.active, token, self.name, shares[0], shares[1])


def cross_attention_names(unet: Any) -> list[str]:
    """The processor names of the UNet's cross-attention layers."""
    from diffusers.models.attention_processor import Attention

    return [f"{name}.processor" for name, module in unet.named_modules()
            if isinstance(module, Attention) and module.is_cross_attention]


@contextlib.contextmanager
def layout_guided(pipe: Any, guidance: LayoutGuidance) -> Iterator[LayoutGuidance]:
    """Install the guided processors on `pipe`'s cross-attention layers for one call; the
    layers get their own processors back afterwards, whatever happens."""
    unet = pipe.unet
    original = dict(unet.attn_processors)
    cross = set(cross_attention_names(unet))
    unet.set_attn_processor({name: LayoutAttnProcessor(proc, guidance, name) if name in cross
                             else proc for name, proc in original.items()})

    def before_unet(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        value = float(timestep.reshape(-1)[0]) if hasattr(timestep, "reshape") else \
            float(timestep)
        guidance.begin_call(value, int(sample.shape[0]), len(pipe.scheduler.timesteps))

    hook = unet.register_forward_pre_hook(before_unet, with_kwargs=True)
    try:
        yield guidance
    finally:
        hook.remove()
        unet.set_attn_processor(original)
