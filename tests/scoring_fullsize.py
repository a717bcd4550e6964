"""CLIP ViT-B/32 and OWL-ViT B/32 at full size with random weights, for the slow score test
and the score benchmark.

Built by the tiny-model builder (engine.models.tiny) from configs with the published sizes,
so they are saved in the layouts the real downloads have (open_clip_config.json +
open_clip_model.safetensors; a transformers folder with its processor) and load through
engine.models.loaders exactly like the sd15 profile's models. About 1.2 GB on disk (fp32).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from engine.models.tiny import build_tiny_role

# open_clip's ViT-B-32 (laion/CLIP-ViT-B-32-laion2B-s34B-b79K: open_clip_config.json)
CLIP_VIT_B_32 = {
    "role": "clip", "kind": "open-clip", "seed": 0,
    "model_cfg": {"embed_dim": 512,
                  "vision_cfg": {"image_size": 224, "layers": 12, "width": 768,
                                 "patch_size": 32},
                  "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512,
                               "heads": 8, "layers": 12}},
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                       "std": [0.26862954, 0.26130258, 0.27577711],
                       "interpolation": "bicubic", "resize_mode": "shortest"},
}
# google/owlvit-base-patch32: OwlViTConfig's defaults are this model's sizes (text 512 wide,
# 12 layers, 16 tokens; vision 768 wide, 12 layers, 768 px, patch 32); its processor
# resizes to 768 × 768.
OWLVIT_B_32 = {
    "role": "detector", "kind": "owlvit", "seed": 0, "model": {},
    "tokenizer": {"pad_token": "!", "model_max_length": 16},
    "image_processor": {"size": {"height": 768, "width": 768},
                        "crop_size": {"height": 768, "width": 768}, "do_center_crop": True,
                        "resample": 3,
                        "image_mean": [0.48145466, 0.4578275, 0.40821073],
                        "image_std": [0.26862954, 0.26130258, 0.27577711]},
}


def build_fullsize_scoring_models(root: Path) -> dict[str, Path]:
    """{"clip": folder, "detector": folder} under `root`, built once (a complete folder has
    its stamp, written last)."""
    out = {}
    with tempfile.TemporaryDirectory() as configs:
        for role, config in (("clip", CLIP_VIT_B_32), ("detector", OWLVIT_B_32)):
            target = root / f"{role}-fullsize"
            if not (target / "tiny_stamp.json").is_file():
                shutil.rmtree(target, ignore_errors=True)  # a build cut short
                (Path(configs) / f"{role}.json").write_text(json.dumps(config))
                build_tiny_role(role, target, config_dir=Path(configs))
            out[role] = target
    return out
