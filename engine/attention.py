"""Attention in float32 inside a bf16 autocast step, for CPUs where bf16 does not speed it up.

On a CPU with AVX512-BF16 but no AMX, torch's scaled-dot-product attention is no faster in
bf16 than in float32 (SD 1.5 UNet call on Zen 4: 4.0 s of attention in bf16, 3.6 s in
float32), while convolutions and linear layers are 2.1-2.2x faster. `FloatAttention` is a
diffusers attention processor with the arithmetic of diffusers' default (`AttnProcessor2_0`):
its projections run under the step's autocast, the attention itself in float32 with autocast
off, and its output goes back in the projections' dtype. engine.device.apply_memory_savers
installs it where the device plan says (`attention_fp32`).
"""

from __future__ import annotations

from typing import Any


class FloatAttention:
    """diffusers' SDPA attention with the attention product in float32."""

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None,
                 attention_mask: Any = None, temb: Any = None, *args: Any, **kwargs: Any
                 ) -> Any:
        import torch
        from torch.nn import functional

        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        batch, sequence, _ = context.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key, value = attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads

        def heads(t: Any) -> Any:
            return t.view(batch, -1, attn.heads, head_dim).transpose(1, 2)

        query, key, value = heads(query), heads(key), heads(value)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        with torch.autocast(query.device.type, enabled=False):
            mask = attention_mask.float() if attention_mask is not None and \
                attention_mask.is_floating_point() else attention_mask
            out = functional.scaled_dot_product_attention(
                query.float(), key.float(), value.float(), attn_mask=mask, dropout_p=0.0,
                is_causal=False)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor
