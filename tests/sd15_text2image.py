"""SD 1.5 text-to-image at full size with random weights, built in memory.

The configs are SD 1.5's published ones (tests/sd15_random.py holds them); the text-to-image
UNet is the inpainting one with 4 input channels instead of 9. About 4 GB of RAM in fp32.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from sd15_random import SD15_INPAINT_UNET, SD15_SCHEDULER, SD15_TEXT_ENCODER, SD15_VAE

SD15_UNET = {**SD15_INPAINT_UNET, "in_channels": 4}


def build_sd15_pipeline(seed: int = 0) -> Any:
    """A StableDiffusionPipeline with SD 1.5's architecture and random weights (fp32, CPU)."""
    import diffusers
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from engine.models.tokenizer import load_clip_tokenizer, write_clip_tokenizer

    torch.manual_seed(seed)
    folder = Path(tempfile.mkdtemp(prefix="sd15-tokenizer-"))
    write_clip_tokenizer(folder)
    return diffusers.StableDiffusionPipeline(
        vae=diffusers.AutoencoderKL(**SD15_VAE),
        text_encoder=CLIPTextModel(CLIPTextConfig(**SD15_TEXT_ENCODER)).eval(),
        tokenizer=load_clip_tokenizer(folder),
        unet=diffusers.UNet2DConditionModel(**SD15_UNET),
        scheduler=diffusers.PNDMScheduler(**SD15_SCHEDULER),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
