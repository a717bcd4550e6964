"""The Train step's settings: which TrainConfig fields the page shows, each with its help in
plain words (TrainConfig's fields carry no help: engine/train/config.py explains them for
engineers), their bounds, and the presets."""

from __future__ import annotations

from typing import Any

MAIN_SETTINGS = ["steps", "learning_rate", "batch_size", "seed", "masked_loss",
                 "prior_preservation", "global_token", "repeat_concept_tokens",
                 "separate_background", "sample_every", "checkpoint_every"]
HELP = {
    "steps": "How long to train. Custom Diffusion uses about 250 steps per concept, 500 "
             "for several together; more steps learn more detail but take longer.",
    "learning_rate": "How big each learning step is (multiplied by the batch size). Too "
                     "high and the pictures break up; too low and the concepts do not stick.",
    "batch_size": "Training pictures per step. More is steadier and needs more memory.",
    "seed": "The same seed and settings train the same run again.",
    "masked_loss": "Learn mostly from inside the objects' masks, less from the background.",
    "prior_preservation": "Also learn from pictures of the plain class word (a cat, a mug) "
                          "made by the base model, so the model does not forget what an "
                          "ordinary cat looks like. Slower: those pictures are made first.",
    "global_token": "Gen4Gen: one extra learned word for what all training pictures share "
                    "(the look of several things together), so the concept words do not "
                    "have to learn it.",
    "repeat_concept_tokens": "Gen4Gen: name each concept twice in the training prompts, "
                             "which strengthens each concept's identity.",
    "separate_background": "Gen4Gen: keep the scene in its own part of the prompt, so the "
                           "concepts are not tied to the backgrounds they were trained on.",
    "sample_every": "Make a sample picture every this many steps (0: none). Samples show "
                    "the learning as it goes and cost a little time each.",
    "checkpoint_every": "Save every this many steps: a stopped or crashed run resumes from "
                        "the last save.",
}
BOUNDS = {"steps": (1, 1_000_000), "learning_rate": (1e-9, 1.0), "batch_size": (1, 64),
          "seed": (0, 2**31 - 1), "sample_every": (0, 1_000_000),
          "checkpoint_every": (1, 1_000_000)}
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
