"""`mycanvas plan`: layouts from the local LLM's semantics and the layout solver."""

from __future__ import annotations

import argparse

from engine.cli.arguments import params_from_args
from engine.cli.progress import EXIT_OK, run_job_in_cli
from engine.cli.registry import job_command
from engine.plan.jobs import PLAN


@job_command(PLAN)
def cmd_plan(args: argparse.Namespace) -> int:
    # "--concepts Mochi,Cup" and "--concepts Mochi Cup" both name two concepts.
    names = [n.strip() for raw in args.concepts or [] for n in raw.split(",") if n.strip()]
    params = params_from_args(PLAN.params, args, concepts=names or None)
    print(run_job_in_cli(PLAN, params, args).summary())
    return EXIT_OK
