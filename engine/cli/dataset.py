"""`mycanvas build-dataset`, `mycanvas export-dataset` and `mycanvas prepare-openvino`."""

from __future__ import annotations

import argparse

from engine.cli.arguments import params_from_args
from engine.cli.progress import EXIT_OK, run_job_in_cli
from engine.cli.registry import job_command
from engine.dataset.jobs import BUILD_DATASET, EXPORT_DATASET, PREPARE_OPENVINO


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


@job_command(PREPARE_OPENVINO)
def cmd_prepare_openvino(args: argparse.Namespace) -> int:
    params = params_from_args(PREPARE_OPENVINO.params, args)
    print(run_job_in_cli(PREPARE_OPENVINO, params, args).summary())
    return EXIT_OK
