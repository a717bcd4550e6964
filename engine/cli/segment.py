"""`mycanvas add-concept` and `mycanvas segment`: concept intake and segmentation, headless.

Cheap to import (argparse only): the jobs import PIL, OpenCV and torch when they run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.cli import EXIT_FAILED, EXIT_OK, arguments, command, run_job_in_cli
from engine.errors import InputError

# Suffixes picked up when a folder is given instead of files; the content decides the rest.
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif",
                  ".heic", ".heif"}


def expand_photo_paths(paths: list[Path]) -> list[str]:
    """Files as given; a folder contributes its photo files (not recursive), sorted."""
    out: list[str] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
            if not found:
                raise InputError(f"{path}: the folder holds no photo files")
            out.extend(str(p) for p in found)
        else:
            out.append(str(path))
    return out


@command("add-concept", "add a concept (your pet, plant, mug) with 1-20 photos")
@arguments(lambda p: (
    p.add_argument("project", type=Path),
    p.add_argument("name", help="the concept's name, e.g. Mochi"),
    p.add_argument("photos", type=Path, nargs="+", help="photo files or folders of photos"),
    p.add_argument("--class", dest="class_word",
                   help="what it is, in one word (cat, cactus, teapot); needed for a new concept"),
    p.add_argument("--token", help="its token, e.g. <mochi> (default: from the name)"),
    p.add_argument("--json", action="store_true", help="machine-readable output"),
))
def cmd_add_concept(args: argparse.Namespace) -> int:
    params = {"project": str(args.project), "concept": args.name,
              "paths": expand_photo_paths(args.photos), "class_word": args.class_word,
              "token": args.token}
    result = run_job_in_cli("import-photos", params, args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        c = result["concept"]
        state = "new" if c["created"] else "existing"
        print(f"{c['token']} {c['name']} ({c['class_word']}, {state} concept): "
              f"{len(result['imported'])} photo(s) imported, "
              f"{len(result['duplicates'])} already there, {len(result['failed'])} failed")
        for failure in result["failed"]:
            print(f"  failed: {failure['reason']}", file=sys.stderr)
    return EXIT_FAILED if result["failed"] else EXIT_OK


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


@command("segment", "cut the concepts out of their photos (masks and cut-outs)", stage=True)
@arguments(lambda p: (
    p.add_argument("project", type=Path),
    p.add_argument("--concept", help="only this concept (default: every concept)"),
    p.add_argument("--redo", action="store_true", help="also photos that already have a mask"),
    p.add_argument("--method", choices=["auto", "sam", "fallback"], default="auto",
                   help="auto: SAM when its weights are here, else the GrabCut fallback"),
    p.add_argument("--photo", type=int, metavar="ID",
                   help="refine one photo: with --concept and --box/--point, or --box-for"),
    p.add_argument("--box", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                   help="the object is inside this box (photo pixels)"),
    p.add_argument("--point", type=float, nargs=2, action="append", metavar=("X", "Y"),
                   help="a click on the object (repeatable)"),
    p.add_argument("--neg-point", type=float, nargs=2, action="append", metavar=("X", "Y"),
                   help="a click on something that is not the object (repeatable)"),
    p.add_argument("--box-for", nargs=5, action="append",
                   metavar=("CONCEPT", "X0", "Y0", "X1", "Y1"),
                   help="a box per concept when the photo shows several (repeatable)"),
    p.add_argument("--json", action="store_true", help="machine-readable output"),
))
def cmd_segment(args: argparse.Namespace) -> int:
    from engine.settings import load_settings

    settings = load_settings()
    common = {"project": str(args.project), "profile": args.profile or settings.profile or None,
              "device": args.device or settings.device, "method": args.method,
              "overrides": dict(settings.role_overrides)}
    prompts = _prompts(args)
    if args.photo is None:
        if prompts:
            raise InputError("--box, --point and --box-for refine one photo: add --photo ID")
        result = run_job_in_cli("segment", {**common, "concept": args.concept,
                                            "redo": args.redo}, args)
    else:
        if not prompts:
            raise InputError("--photo needs --concept with --box/--point, or --box-for")
        result = run_job_in_cli("segment-prompts", {**common, "photo_id": args.photo,
                                                    "prompts": prompts}, args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for made in result["masks"]:
            print(f"photo {made['photo_id']}: mask {made['mask_id']} ({made['method']}, "
                  f"{made['area'] * 100:.0f}% of the photo)")
        if result.get("skipped"):
            print(f"{result['skipped']} photo(s) already had a mask (--redo to redo them)")
        for failure in result.get("failed", []):
            print(f"  failed: {failure['reason']}", file=sys.stderr)
    return EXIT_FAILED if result.get("failed") else EXIT_OK
