"""`mycanvas segment`: masks and cut-outs of the concepts' photos, automatic or pointed at."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.cli.arguments import params_from_args
from engine.cli.progress import EXIT_FAILED, EXIT_OK, run_job_in_cli
from engine.cli.registry import job_command
from engine.errors import InputError
from engine.segment.jobs import SEGMENT, SEGMENT_PROMPTS, SegmentPromptsParams


def _pointing(p: argparse.ArgumentParser) -> None:
    p.add_argument("--photo", type=int, metavar="ID",
                   help="refine one photo: with --concept and --box/--point, or --box-for")
    p.add_argument("--box", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                   help="the object is inside this box (photo pixels)")
    p.add_argument("--point", type=float, nargs=2, action="append", metavar=("X", "Y"),
                   help="a click on the object (repeatable)")
    p.add_argument("--neg-point", type=float, nargs=2, action="append", metavar=("X", "Y"),
                   help="a click on something that is not the object (repeatable)")
    p.add_argument("--box-for", nargs=5, action="append",
                   metavar=("CONCEPT", "X0", "Y0", "X1", "Y1"),
                   help="a box per concept when the photo shows several (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _prompts(args: argparse.Namespace) -> list[dict[str, Any]]:
    prompts: list[dict[str, Any]] = []
    points = [list(p) for p in args.point or []] + [list(p) for p in args.neg_point or []]
    labels = [1] * len(args.point or []) + [0] * len(args.neg_point or [])
    if args.box or points:
        if not args.concept:
            raise InputError("--box/--point/--neg-point need --concept NAME (whose mask it is)")
        prompts.append({"concept": args.concept, "box": args.box, "points": points,
                        "labels": labels})
    for name, *coords in args.box_for or []:
        try:
            box = [float(v) for v in coords]
        except ValueError:
            raise InputError(f"--box-for {name}: a box is four numbers, got {coords}") from None
        prompts.append({"concept": name, "box": box, "points": [], "labels": []})
    return prompts


@job_command(SEGMENT, arguments=_pointing)
def cmd_segment(args: argparse.Namespace) -> int:
    prompts = _prompts(args)
    if args.photo is None:
        if prompts:
            raise InputError("--box, --point and --box-for refine one photo: add --photo ID")
        result = run_job_in_cli(SEGMENT, params_from_args(SEGMENT.params, args), args)
    else:
        if not prompts:
            raise InputError("--photo needs --concept with --box/--point, or --box-for")
        params = SegmentPromptsParams(
            project=args.project, profile=args.profile, device=args.device,
            method=args.method or "auto", photo_id=args.photo, prompts=prompts)
        result = run_job_in_cli(SEGMENT_PROMPTS, params, args)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        if result.summary():
            print(result.summary())
        for failure in result.failed:
            print(f"  failed: {failure['reason']}", file=sys.stderr)
    return EXIT_FAILED if result.failed else EXIT_OK
