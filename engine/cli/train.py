"""`mycanvas train`: a new Custom Diffusion run, or the resume of one (`--resume [RUN_ID]`).

Its flags are TrainConfig's declared fields (engine.cli.arguments); a flag not given leaves
the setting to TrainConfig's default, or to the resumed run's stored value.
"""

from __future__ import annotations

import argparse

from engine.cli.arguments import add_params_arguments, given_values, resumed_run_id
from engine.cli.progress import EXIT_OK, run_job_in_cli
from engine.cli.registry import command
from engine.train.config import TrainConfig
from engine.train.jobs import TRAIN


def _arguments(p: argparse.ArgumentParser) -> None:
    add_params_arguments(p, TRAIN.params)  # project, profile, device
    add_params_arguments(p, TrainConfig)
    p.add_argument("--resume", nargs="?", const="last", metavar="RUN_ID",
                   help="continue a run from its last checkpoint (default: the latest "
                   "unfinished one)")


@command("train", TRAIN.help, _arguments)
def cmd_train(args: argparse.Namespace) -> int:
    from engine.train import latest_resumable_run

    run_id = resumed_run_id(args.resume, args.project, latest_resumable_run)
    params = TRAIN.params(project=args.project, config=given_values(TrainConfig, args),
                          run_id=run_id, profile=args.profile, device=args.device)
    print(run_job_in_cli(TRAIN, params, args).summary())
    return EXIT_OK
