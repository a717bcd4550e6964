"""The Train step's settings: which TrainConfig fields the page shows (their help, bounds and
choices are the fields' own, engine/train/config.py), and the presets."""

from __future__ import annotations

from typing import Any

MAIN_SETTINGS = ["steps", "learning_rate", "batch_size", "seed", "masked_loss",
                 "prior_preservation", "global_token", "repeat_concept_tokens",
                 "separate_background", "sample_every", "checkpoint_every"]
PRESETS: dict[str, dict[str, Any]] = {
    "Quick look": {"steps": 100, "sample_every": 25, "checkpoint_every": 50,
                   "masked_loss": False, "prior_preservation": False},
    "Standard (Custom Diffusion)": {"steps": 500, "sample_every": 100,
                                    "checkpoint_every": 100, "masked_loss": False,
                                    "prior_preservation": False},
    "Best": {"steps": 800, "sample_every": 100, "checkpoint_every": 100,
             "masked_loss": True, "prior_preservation": True},
}
CUSTOM = "Custom"
