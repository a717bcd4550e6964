"""`mycanvas extract`: several concepts (tokens and masks) from one photo, or the resume of an
extraction run (`--resume [RUN_ID]`).

    mycanvas extract PROJECT PHOTO --concepts mochi:cat,rex:dog \\
        [--box mochi X0 Y0 X1 Y1 ...] [--steps N] [--iterations N]

Its settings' flags are ExtractConfig's declared fields (engine.cli.arguments).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.cli.arguments import add_params_arguments, given_values, resumed_run_id
from engine.cli.progress import EXIT_OK, run_job_in_cli
from engine.cli.registry import command
from engine.errors import InputError
from engine.extract.config import ExtractConfig
from engine.extract.jobs import EXTRACT


def _concepts(args: argparse.Namespace) -> list[dict[str, Any]]:
    from engine.extract import parse_concepts

    if not args.concepts:
        return []
    concepts: list[dict[str, Any]] = [{"name": n, "class_word": w}
                                      for n, w in parse_concepts(args.concepts)]
    by_name = {c["name"].casefold(): c for c in concepts}
    for name, *coords in args.box or []:
        concept = by_name.get(name.casefold())
        if concept is None:
            raise InputError(f"--box {name}: no such concept in --concepts")
        if "box" in concept:
            raise InputError(f"--box {name} is given twice")
        try:
            concept["box"] = [float(v) for v in coords]
        except ValueError:
            raise InputError(f"--box {name}: a box is four numbers, got {coords}") from None
    return concepts


def _arguments(p: argparse.ArgumentParser) -> None:
    add_params_arguments(p, EXTRACT.params)  # project, photo, profile, device, ...
    p.add_argument("--concepts", metavar="NAME:CLASS,...",
                   help="the concepts in the photo, e.g. mochi:cat,rex:dog")
    p.add_argument("--box", nargs=5, action="append", metavar=("NAME", "X0", "Y0", "X1", "Y1"),
                   help="where a concept is in the photo, in pixels (repeatable)")
    add_params_arguments(p, ExtractConfig)
    p.add_argument("--resume", nargs="?", const="last", metavar="RUN_ID",
                   help="continue an extraction run from its last checkpoint (default: the "
                   "latest unfinished one)")


@command("extract", EXTRACT.help, _arguments)
def cmd_extract(args: argparse.Namespace) -> int:
    from engine.extract import latest_resumable_extraction

    if args.photo and not args.photo.isdigit() and not Path(args.photo).is_file():
        raise InputError(f"Photo not found: {args.photo} (give an image file, or a photo id "
                         "of the project)")
    run_id = resumed_run_id(args.resume, args.project, latest_resumable_extraction)
    if args.resume is None and (not args.photo or not args.concepts):
        raise InputError("Give the photo and --concepts NAME:CLASS,... (or --resume)")
    values: dict[str, Any] = {"project": args.project, "photo": args.photo,
                              "concepts": _concepts(args),
                              "config": given_values(ExtractConfig, args),
                              "run_id": run_id, "profile": args.profile,
                              "device": args.device}
    for flag in ("start_from_masks", "segment_method", "add_concepts"):
        if getattr(args, flag, None) is not None:
            values[flag] = getattr(args, flag)
    print(run_job_in_cli(EXTRACT, EXTRACT.params(**values), args).summary())
    return EXIT_OK
