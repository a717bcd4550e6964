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
    fine_tuning.py       the core any trainer shares: what trains (cross-attention k/v, one
                         row per new token), its state, loading the base model in its precision

Custom Diffusion:

    config.py            TrainConfig: every setting declared (help, bounds, choices), validated;
                         the Gen4Gen switches documented
    prompts.py           training prompts (global token, repeated tokens, separate background)
    data.py              dataset snapshot, cached latents (+ flips), masks, class images
    custom_diffusion.py  the fine-tuning core with Custom Diffusion's optimiser and loss
    export.py            the diffusers layout + our manifest; loading it back
    runner.py            one run: caches, the trainer the loop drives, the export
    training_job.py      the `train` job
    jobs.py              the `train` job, declared once

Public API: `TRAIN`, `TrainParams`, `TrainedRun`, `latest_resumable_run`, `delete_run`; a
run's one owner (`claim_run`, `run_owner`, `settle_dead_runs`); the
parts above for other trainers. For the stages that use a run's concepts (generation): the
export format (`read_manifest`, `MANIFEST_NAME`, `WEIGHTS_NAME`), a run's folder (`RunPaths`)
and the training prompt rules (`ConceptRef`, `PromptStrategies`, `training_prompt`). For other
trainers (EM extraction): the parts listed in `_PARTS` below, each imported from its module
on first use. Importing this package is cheap: torch is imported inside the functions that
need it.
"""

from typing import TYPE_CHECKING

from engine.lazy import lazy_exports
from engine.train.export import MANIFEST_NAME, WEIGHTS_NAME, export_fingerprint, read_manifest
from engine.train.jobs import TRAIN, TrainedRun, TrainParams
from engine.train.prompts import ConceptRef, PromptStrategies, training_prompt
from engine.train.runs import (
    RunKind,
    RunPaths,
    claim_run,
    delete_run,
    new_run,
    open_run,
    resume_run,
    run_has_checkpoint,
    run_owner,
    settle_dead_runs,
    status_follows,
)
from engine.train.runs import latest_resumable_run as latest_unfinished_run  # of any kind
from engine.train.training_job import latest_resumable_run

# The reusable training parts other trainers import from here (not from the modules, which a
# stage may not reach into). Their modules import torch or numpy, so each name is imported on
# first use: `from engine.train import run_loop` costs nothing until then.
_PARTS = {
    "add_concept_tokens": "engine.train.tokens",
    "AddedTokens": "engine.train.tokens",
    "noised_prediction": "engine.train.diffusion_step",
    "draw_latents": "engine.train.diffusion_step",
    "weighted_mse": "engine.train.diffusion_step",
    "OptimiserStep": "engine.train.optimiser",
    "run_loop": "engine.train.loop",
    "LoopSchedule": "engine.train.loop",
    "MetricsLog": "engine.train.loop",
    "Trainer": "engine.train.loop",
    "TrainerState": "engine.train.loop",
    "Precision": "engine.train.precision",
    "plan_precision": "engine.train.precision",
    "remove_stale_temp_folders": "engine.train.checkpoints",
    "latest_checkpoint": "engine.train.checkpoints",
    "export_concepts": "engine.train.export",
    "apply_concepts": "engine.train.export",
    "train_cross_attention_kv": "engine.train.fine_tuning",
    "FineTuningModel": "engine.train.fine_tuning",
    "load_base_pipeline": "engine.train.fine_tuning",
    "derived_seed": "engine.train.data",
    "step_generator": "engine.train.data",
    "encode_latent_stats": "engine.train.data",
}


__getattr__ = lazy_exports(__name__, _PARTS)


if TYPE_CHECKING:
    from engine.train.checkpoints import latest_checkpoint, remove_stale_temp_folders
    from engine.train.data import derived_seed, encode_latent_stats, step_generator
    from engine.train.diffusion_step import draw_latents, noised_prediction, weighted_mse
    from engine.train.export import apply_concepts, export_concepts
    from engine.train.fine_tuning import (
        FineTuningModel,
        load_base_pipeline,
        train_cross_attention_kv,
    )
    from engine.train.loop import LoopSchedule, MetricsLog, Trainer, TrainerState, run_loop
    from engine.train.optimiser import OptimiserStep
    from engine.train.precision import Precision, plan_precision
    from engine.train.tokens import AddedTokens, add_concept_tokens

__all__ = [
    "MANIFEST_NAME",
    "TRAIN",
    "WEIGHTS_NAME",
    "AddedTokens",
    "ConceptRef",
    "FineTuningModel",
    "LoopSchedule",
    "MetricsLog",
    "OptimiserStep",
    "Precision",
    "PromptStrategies",
    "RunKind",
    "RunPaths",
    "TrainParams",
    "TrainedRun",
    "Trainer",
    "TrainerState",
    "add_concept_tokens",
    "apply_concepts",
    "claim_run",
    "delete_run",
    "derived_seed",
    "draw_latents",
    "encode_latent_stats",
    "export_concepts",
    "export_fingerprint",
    "latest_checkpoint",
    "latest_resumable_run",
    "latest_unfinished_run",
    "load_base_pipeline",
    "new_run",
    "noised_prediction",
    "open_run",
    "plan_precision",
    "read_manifest",
    "remove_stale_temp_folders",
    "resume_run",
    "run_has_checkpoint",
    "run_loop",
    "run_owner",
    "settle_dead_runs",
    "status_follows",
    "step_generator",
    "train_cross_attention_kv",
    "training_prompt",
    "weighted_mse",
]
