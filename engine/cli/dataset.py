"""`mycanvas build-dataset` and `mycanvas export-dataset`."""

from __future__ import annotations

import argparse

from engine.cli.arguments import params_from_args
from engine.cli.progress import EXIT_OK, run_job_in_cli
from engine.cli.registry import job_command
from engine.dataset.jobs import BUILD_DATASET, EXPORT_DATASET


@job_command(BUILD_DATASET)
def cmd_build_dataset(args: argparse.Namespace) -> int:
    params = params_from_args(BUILD_DATASET.params, args)
    print(run_job_in_cli(BUILD_DATASET, params, args).summary())
    return EXIT_OK


@job_command(EXPORT_DATASET)
def cmd_export_dataset(args: argparse.Namespace) -> int:
    params = params_from_args(EXPORT_DATASET.params, args)
    print(run_job_in_cli(EXPORT_DATASET, params, args).summary())
    return EXIT_OK
