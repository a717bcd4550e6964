"""`mycanvas score`: CP-CLIP, TI-CLIP and Custom Diffusion's pair for generated pictures."""

from __future__ import annotations

import argparse
import json

from engine.cli.arguments import params_from_args
from engine.cli.progress import EXIT_FAILED, EXIT_OK, run_job_in_cli
from engine.cli.registry import job_command
from engine.score.jobs import SCORE


@job_command(SCORE, arguments=lambda p: p.add_argument(
    "--json", action="store_true", help="machine-readable output"))
def cmd_score(args: argparse.Namespace) -> int:
    result = run_job_in_cli(SCORE, params_from_args(SCORE.params, args), args)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return EXIT_FAILED if result.remaining else EXIT_OK
