"""`mycanvas personalize`: everything still missing, in one go (the window's Personalize).

    mycanvas personalize PROJECT                      # the quick preset
    mycanvas personalize PROJECT --preset standard --dry-run   # what it would do, how long
"""

from __future__ import annotations

import argparse
import json

from engine.cli.arguments import params_from_args
from engine.cli.progress import EXIT_OK, run_job_in_cli
from engine.cli.registry import job_command
from engine.personalize.jobs import PERSONALIZE, PersonalizeParams


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true",
                   help="show the plan (stages, counts, estimated time and disk) and stop")
    p.add_argument("--json", action="store_true", help="machine-readable output")


@job_command(PERSONALIZE, arguments=_arguments)
def cmd_personalize(args: argparse.Namespace) -> int:
    params = params_from_args(PERSONALIZE.params, args)
    assert isinstance(params, PersonalizeParams)
    if args.dry_run:
        from engine.personalize import plan_for

        result = plan_for(params)
    else:
        result = run_job_in_cli(PERSONALIZE, params, args)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return EXIT_OK
