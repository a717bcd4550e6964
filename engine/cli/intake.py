"""`mycanvas add-concept`: a concept with its photos (files or folders of photos)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.cli.arguments import params_from_args
from engine.cli.progress import EXIT_FAILED, EXIT_OK, run_job_in_cli
from engine.cli.registry import job_command
from engine.errors import InputError
from engine.intake.jobs import IMPORT_PHOTOS

# Suffixes picked up when a folder is given instead of files; the content decides the rest.
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif",
                  ".heic", ".heif"}


def expand_photo_paths(paths: list[str]) -> list[str]:
    """Files as given; a folder contributes its photo files (not recursive), sorted."""
    out: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
            if not found:
                raise InputError(f"{path}: the folder holds no photo files")
            out.extend(str(p) for p in found)
        else:
            out.append(str(path))
    return out


@job_command(IMPORT_PHOTOS, name="add-concept", arguments=lambda p: p.add_argument(
    "--json", action="store_true", help="machine-readable output"))
def cmd_add_concept(args: argparse.Namespace) -> int:
    params = params_from_args(IMPORT_PHOTOS.params, args,
                              paths=expand_photo_paths(args.paths))
    result = run_job_in_cli(IMPORT_PHOTOS, params, args)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.summary())
        for failure in result.failed:
            print(f"  failed: {failure['reason']}", file=sys.stderr)
    return EXIT_FAILED if result.failed else EXIT_OK
