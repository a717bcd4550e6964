"""`mycanvas report`: an HTML report of the project; prints the file's path."""

from __future__ import annotations

import argparse
import sys

from engine.cli.arguments import params_from_args
from engine.cli.progress import EXIT_OK, run_job_in_cli
from engine.cli.registry import job_command
from engine.report.jobs import REPORT


@job_command(REPORT)
def cmd_report(args: argparse.Namespace) -> int:
    result = run_job_in_cli(REPORT, params_from_args(REPORT.params, args), args)
    if result.test_model and not args.quiet:
        print("note: some scores come from the tiny test models; the report says so",
              file=sys.stderr)
    print(result.path)
    return EXIT_OK
