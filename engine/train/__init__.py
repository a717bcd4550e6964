"""Fine-tuning: Custom Diffusion on the project's mini-MyCanvas dataset, with Gen4Gen's
training-prompt strategies.

    config.py            TrainConfig: every setting, validated; the Gen4Gen switches documented
    prompts.py           training prompts (global token, repeated tokens, separate background)
    data.py              dataset snapshot, cached latents (+ flips), masks, class images
    custom_diffusion.py  what trains (cross-attention k/v, one row per new token) and the loss
    checkpoints.py       atomic checkpoints, pruning, resume
    export.py            the diffusers layout + our manifest; loading it back
    runner.py            one run: caches, steps, checkpoints, previews, cancel, resume
    job.py               the `train` job and the `mycanvas train` command

Importing this package is cheap: torch is imported inside the functions that need it.
"""
