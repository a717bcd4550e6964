"""SD 1.5 inpainting at full size with random weights, from SD 1.5's published configs.

Saved in the pipeline-folder layout the real download has (safetensors), so it loads through
engine.models.loaders.load_inpaint like the real model. About 4.3 GB on disk (fp32).
"""

from __future__ import annotations

from pathlib import Path

# stable-diffusion-v1-5/stable-diffusion-inpainting: unet/config.json
SD15_INPAINT_UNET = {
    "sample_size": 64, "in_channels": 9, "out_channels": 4, "center_input_sample": False,
    "flip_sin_to_cos": True, "freq_shift": 0,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                         "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                       "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
    "downsample_padding": 1, "mid_block_scale_factor": 1, "act_fn": "silu",
    "norm_num_groups": 32, "norm_eps": 1e-5, "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
# vae/config.json
SD15_VAE = {
    "sample_size": 512, "in_channels": 3, "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "act_fn": "silu",
    "latent_channels": 4, "norm_num_groups": 32, "scaling_factor": 0.18215,
}
# text_encoder/config.json (CLIP ViT-L/14 text tower)
SD15_TEXT_ENCODER = {
    "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "projection_dim": 768,
    "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 77,
    "hidden_act": "quick_gelu", "bos_token_id": 49406, "eos_token_id": 49407,
    "pad_token_id": 49407,
}
# scheduler/scheduler_config.json
SD15_SCHEDULER = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "set_alpha_to_one": False, "skip_prk_steps": True,
    "steps_offset": 1,
}


def build_sd15_inpaint_random(out: Path, seed: int = 0) -> Path:
    """Write a random-weight SD 1.5 inpainting pipeline folder at `out`; returns `out`."""
    import json

    import diffusers
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    from engine.models.tokenizer import write_clip_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    unet = diffusers.UNet2DConditionModel(**SD15_INPAINT_UNET)
    unet.save_pretrained(str(out / "unet"), safe_serialization=True)
    del unet  # keep the peak at one big model
    vae = diffusers.AutoencoderKL(**SD15_VAE)
    vae.save_pretrained(str(out / "vae"), safe_serialization=True)
    text_encoder = CLIPTextModel(CLIPTextConfig(**SD15_TEXT_ENCODER))
    text_encoder.save_pretrained(str(out / "text_encoder"), safe_serialization=True)
    scheduler = diffusers.PNDMScheduler(**SD15_SCHEDULER)
    scheduler.save_pretrained(str(out / "scheduler"))
    write_clip_tokenizer(out / "tokenizer", pad_token="<|endoftext|>", model_max_length=77)
    index = {
        "_class_name": "StableDiffusionInpaintPipeline",
        "_diffusers_version": diffusers.__version__,
        "feature_extractor": [None, None], "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None], "scheduler": ["diffusers", "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
    }
    (out / "model_index.json").write_text(json.dumps(index, indent=2))
    return out
