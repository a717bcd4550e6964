"""`mycanvas train`: a new Custom Diffusion run, or the resume of one (`--resume [RUN_ID]`)."""

from __future__ import annotations

import argparse
from typing import Any

from engine.cli.arguments import add_params_arguments, resumed_run_id
from engine.cli.progress import EXIT_OK, run_job_in_cli
from engine.cli.registry import command
from engine.train.jobs import TRAIN


def _cli_config(args: argparse.Namespace) -> dict[str, Any]:
    pairs = {
        "steps": args.steps, "learning_rate": args.lr, "batch_size": args.batch_size,
        "gradient_accumulation": args.accumulation, "seed": args.seed,
        "resolution": args.resolution, "checkpoint_every": args.checkpoint_every,
        "sample_every": args.sample_every, "mixed_precision": args.mixed_precision,
    }
    config = {k: v for k, v in pairs.items() if v is not None}
    for flag, key in (("prior_preservation", "prior_preservation"),
                      ("masked_loss", "masked_loss"),
                      ("gradient_checkpointing", "gradient_checkpointing"),
                      ("include_test_pictures", "include_test_pictures")):
        if getattr(args, flag):
            config[key] = True
    for flag, key in (("no_global_token", "global_token"),
                      ("no_repeat_tokens", "repeat_concept_tokens"),
                      ("no_separate_background", "separate_background")):
        if getattr(args, flag):
            config[key] = False
    return config


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, help="optimiser steps (default 500)")
    p.add_argument("--lr", type=float, help="learning rate before scaling by the batch "
                   "(default 1e-5)")
    p.add_argument("--batch-size", type=int, help="images per step (default 2)")
    p.add_argument("--accumulation", type=int, help="gradient accumulation steps (default 1)")
    p.add_argument("--seed", type=int, help="seed (default 0)")
    p.add_argument("--resolution", type=int, help="training side in pixels (default: profile's)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (100)")
    p.add_argument("--sample-every", type=int, help="steps between preview samples (100; 0 off)")
    p.add_argument("--mixed-precision", choices=["auto", "no", "fp16", "bf16"],
                   help="auto: bf16 or fp16 on a CUDA GPU, float32 elsewhere")
    p.add_argument("--prior-preservation", action="store_true",
                   help="regularise with class images made by the base model")
    p.add_argument("--masked-loss", action="store_true",
                   help="weight the loss inside the object masks")
    p.add_argument("--gradient-checkpointing", action="store_true", help="less memory, slower")
    p.add_argument("--include-test-pictures", action="store_true",
                   help="also train on dataset items built with the test models (left out of "
                   "a run on a real profile by default: their pictures are noise)")
    p.add_argument("--no-global-token", action="store_true",
                   help="Gen4Gen: no global composition token")
    p.add_argument("--no-repeat-tokens", action="store_true",
                   help="Gen4Gen: name each concept once in the prompt")
    p.add_argument("--no-separate-background", action="store_true",
                   help="Gen4Gen: keep the scene inside the caption")
    p.add_argument("--resume", nargs="?", const="last", metavar="RUN_ID",
                   help="continue a run from its last checkpoint (default: the latest "
                   "unfinished one)")


def _arguments(p: argparse.ArgumentParser) -> None:
    add_params_arguments(p, TRAIN.params)  # project, profile, device
    _add_arguments(p)


@command("train", TRAIN.help, _arguments)
def cmd_train(args: argparse.Namespace) -> int:
    from engine.train import latest_resumable_run

    run_id = resumed_run_id(args.resume, args.project, latest_resumable_run)
    params = TRAIN.params(project=args.project, config=_cli_config(args), run_id=run_id,
                          profile=args.profile, device=args.device)
    print(run_job_in_cli(TRAIN, params, args).summary())
    return EXIT_OK
