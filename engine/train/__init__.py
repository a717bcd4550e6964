"""Fine-tuning: Custom Diffusion on the project's mini-MyCanvas dataset, with Gen4Gen's
training-prompt strategies; and the parts any trainer reuses (EM concept extraction too).

Parts for any run kind:

    tokens.py            new concept tokens on a pipeline: trainable rows, frozen matrix
    diffusion_step.py    noise latents, run the UNet: prediction and target, no loss
    optimiser.py         one optimiser step: accumulation, fp16 scaler, clipping, LR warm-up
    loop.py              the training loop: resume, checkpoints, previews, cancel, OOM retry
    runs.py              a run's record, folder and status; resume by id; latest unfinished
    checkpoints.py       atomic checkpoints, pruning, resume
    precision.py         dtypes and autocast per device

Custom Diffusion:

    config.py            TrainConfig: every setting, validated; the Gen4Gen switches documented
    prompts.py           training prompts (global token, repeated tokens, separate background)
    data.py              dataset snapshot, cached latents (+ flips), masks, class images
    custom_diffusion.py  what trains (cross-attention k/v, one row per new token) and the loss
    export.py            the diffusers layout + our manifest; loading it back
    runner.py            one run: caches, the trainer the loop drives, the export
    training_job.py      the `train` job
    jobs.py              the `train` job, declared once

Public API: `TRAIN`, `TrainParams`, `TrainedRun`, `latest_resumable_run`; the parts above for
other trainers. Importing this package is cheap: torch is imported inside the functions that
need it.
"""

from engine.train.jobs import TRAIN, TrainedRun, TrainParams
from engine.train.training_job import latest_resumable_run

__all__ = ["TRAIN", "TrainParams", "TrainedRun", "latest_resumable_run"]
