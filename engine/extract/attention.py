"""Cross-attention maps of chosen UNet layers, recorded during a forward pass, with gradients.

SDPA (`AttnProcessor2_0`, diffusers' default) never forms the attention probabilities, so a
recording processor takes the classic path (`attn.get_attention_scores`) on the chosen layers
only, and only while recording; every other layer, and these too when not recording, keep
their own processor. `capture_attention(unet)` installs the recorders for the length of a
`with` block and puts the originals back on exit:

    with capture_attention(unet) as capture:
        with capture.recording():
            unet(noisy, t, states)          # maps kept, with their autograd graph
        maps = capture.token_maps(positions)  # [B, tokens, m, m]
        unet(noisy, t, states)              # not recording: the original processors' cost

Which layers: Break-A-Scene averages the five 16×16 cross-attention layers of SD 1.5 at
512 px (`down_blocks.2.attentions.{0,1}`, `up_blocks.1.attentions.{0,1,2}`). Structurally
those are the down and up blocks of the deepest resolution that has cross-attention in the
down path (the mid block left out). `attention_layers` picks the same by structure for any
UNet: on the tiny test model (64 px, blocks at 8×8 and 4×4) they are `down_blocks.1` and
`up_blocks.0`, at 4×4.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.errors import InputError


def attention_layers(unet: Any) -> tuple[list[str], int]:
    """(processor names of the chosen cross-attention layers, their level: each map is
    latent_side >> level pixels a side). See the module doc."""
    levels = []  # (level, "down"/"up", block index) of blocks with attention
    for i, block in enumerate(unet.down_blocks):
        if getattr(block, "attentions", None):
            levels.append((i, "down", i))
    if not levels:
        raise InputError("This UNet has no cross-attention in its down blocks to record")
    level = max(lv for lv, _, _ in levels)
    blocks = [f"down_blocks.{i}" for lv, _, i in levels if lv == level]
    count = len(unet.up_blocks)
    blocks += [f"up_blocks.{j}" for j, block in enumerate(unet.up_blocks)
               if count - 1 - j == level and getattr(block, "attentions", None)]
    names = [name for name in unet.attn_processors
             if name.endswith("attn2.processor") and any(name.startswith(b + ".attentions.")
                                                         for b in blocks)]
    return names, level


@dataclass
class AttentionStore:
    """The maps recorded since `clear`: per layer, [B, queries, text tokens], head-averaged."""

    recording: bool = False
    maps: list[torch.Tensor] = field(default_factory=list)

    def clear(self) -> None:
        self.maps = []


class RecordingAttnProcessor:
    """Records the attention probabilities of a cross-attention layer while the store is
    recording (classic path); otherwise runs the layer's own processor unchanged."""

    def __init__(self, store: AttentionStore, original: Any) -> None:
        self.store = store
        self.original = original

    # Every argument diffusers may pass is named: an unnamed one would be dropped with a
    # warning (Attention.forward filters cross_attention_kwargs by this signature).
    def __call__(self, attn: Any, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None,
                 temb: torch.Tensor | None = None) -> torch.Tensor:
        if not self.store.recording or encoder_hidden_states is None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask,
                                 temb)
        return self._classic(attn, hidden_states, encoder_hidden_states, attention_mask, temb)

    def _classic(self, attn: Any, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor, attention_mask: torch.Tensor | None,
                 temb: torch.Tensor | None) -> torch.Tensor:
        """diffusers' AttnProcessor arithmetic, keeping the probabilities."""
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        four_d = hidden_states.ndim == 4
        if four_d:
            b, c, h, w = hidden_states.shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        batch, text_len, _ = encoder_hidden_states.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, text_len, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        query, key, value = (attn.head_to_batch_dim(t) for t in (query, key, value))
        probs = attn.get_attention_scores(query, key, attention_mask)
        # head_to_batch_dim lays heads out as batch * heads + head.
        self.store.maps.append(probs.view(batch, attn.heads, *probs.shape[1:]).mean(dim=1))
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        out = attn.to_out[1](attn.to_out[0](out))
        if four_d:
            out = out.transpose(-1, -2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class AttentionCapture:
    """The recorders installed by `capture_attention`: switch recording on, read maps."""

    def __init__(self, layers: Sequence[str], level: int) -> None:
        self.layers = list(layers)
        self.level = level
        self.store = AttentionStore()

    @contextlib.contextmanager
    def recording(self) -> Iterator[AttentionCapture]:
        """Record the maps of the forward passes inside the block (earlier ones dropped)."""
        self.store.clear()
        self.store.recording = True
        try:
            yield self
        finally:
            self.store.recording = False

    def token_maps(self, positions: Sequence[Sequence[int]]) -> torch.Tensor:
        """[B, len(positions), m, m]: for each entry of `positions` (the prompt positions of
        one token, or of a word's sub-tokens), its map averaged over the positions, the heads
        and the recorded layers (of the last forward pass)."""
        maps = self.store.maps[-len(self.layers):] if self.store.maps else []
        if len(maps) != len(self.layers):
            raise RuntimeError(f"Recorded {len(self.store.maps)} attention maps, expected "
                               f"{len(self.layers)}: record one forward pass first")
        mean = torch.stack(maps).mean(dim=0)  # [B, queries, text tokens]
        side = round(mean.shape[1] ** 0.5)
        if side * side != mean.shape[1]:
            raise RuntimeError(f"Attention over {mean.shape[1]} queries is not a square map")
        picked = [mean[:, :, list(p)].mean(dim=-1) for p in positions]
        return torch.stack(picked, dim=1).reshape(mean.shape[0], len(positions), side, side)


@contextlib.contextmanager
def capture_attention(unet: Any, layers: Sequence[str] | None = None
                      ) -> Iterator[AttentionCapture]:
    """Install recorders on `layers` (default: attention_layers(unet)) for the block; the
    original processors are back on exit, also after an error."""
    level = -1
    if layers is None:
        layers, level = attention_layers(unet)
    originals = dict(unet.attn_processors)
    missing = [name for name in layers if name not in originals]
    if missing:
        raise InputError(f"The UNet has no attention layer {missing[0]}")
    capture = AttentionCapture(layers, level)
    installed = dict(originals)
    for name in layers:
        installed[name] = RecordingAttnProcessor(capture.store, originals[name])
    unet.set_attn_processor(installed)
    try:
        yield capture
    finally:
        unet.set_attn_processor(originals)
