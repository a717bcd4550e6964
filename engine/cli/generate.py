"""`mycanvas generate`: pictures of your concepts from a run, or a stored recipe made again.

    mycanvas generate PROJECT --prompt "<mochi> cat and <cup> mug on a beach" -n 4
    mycanvas generate PROJECT --concepts mochi cup --scene "on a beach" --seed 7
    mycanvas generate PROJECT --layout 3                       # the layout's caption, guided
    mycanvas generate PROJECT --prompt "..." --box mochi 0 0.2 0.5 0.9 --box cup 0.55 0.4 1 0.9
    mycanvas generate PROJECT --recipe 12                      # generation 12 again
    mycanvas generate PROJECT --recipe picture.png             # the recipe a PNG carries
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from engine.cli.arguments import params_from_args
from engine.cli.progress import EXIT_OK, run_job_in_cli
from engine.cli.registry import job_command
from engine.errors import InputError
from engine.generate.jobs import GENERATE

_SIZE = re.compile(r"^(\d+)(?:[x×](\d+))?$")


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--count", type=int, help="how many pictures (default 1)")
    p.add_argument("--size", metavar="W[xH]",
                   help="picture size in pixels: 512 or 640x512 (default: the profile's)")
    p.add_argument("--box", nargs=5, action="append", metavar=("CONCEPT", "X0", "Y0", "X1", "Y1"),
                   help="place a concept in a box, corners as fractions 0..1 of the canvas "
                        "(repeatable)")
    p.add_argument("--recipe", metavar="FILE|ID",
                   help="make a picture again: a generation id, a recipe .json or a PNG we made")
    p.add_argument("--out", type=Path, metavar="FOLDER",
                   help="also copy the pictures into this folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _size(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    match = _SIZE.match(text.strip().lower())
    if not match:
        raise InputError(f"--size takes 512 or WIDTHxHEIGHT, got {text!r}")
    width = int(match[1])
    return width, int(match[2]) if match[2] else width


def _boxes(raw: list[list[str]] | None) -> dict[str, list[float]] | None:
    if not raw:
        return None
    boxes: dict[str, list[float]] = {}
    for name, *corners in raw:
        try:
            values = [float(v) for v in corners]
        except ValueError:
            raise InputError(f"--box {name}: the corners are four numbers, got "
                             f"{' '.join(corners)}") from None
        if name in boxes:
            raise InputError(f"--box {name} is given twice")
        boxes[name] = values
    return boxes


def _recipe(project: str, source: str | None) -> dict[str, Any] | None:
    if source is None:
        return None
    from engine.generate.recipe import Recipe, read_recipe_file

    if source.isdigit() and not Path(source).is_file():
        from engine.project import Project

        with Project.open(project) as proj:
            settings = proj.generation(int(source)).settings
        return Recipe.from_dict(settings, f"generation {source}'s recipe").to_dict()
    return read_recipe_file(Path(source)).to_dict()


def _copy_out(project: str, result: Any, out: Path) -> list[str]:
    from engine.atomic import atomic_copy
    from engine.project import Project

    out.mkdir(parents=True, exist_ok=True)
    copies = []
    with Project.open(project) as proj:
        for gen_id, rel in zip(result.generation_ids, result.image_files, strict=True):
            target = out / f"generation-{gen_id}.png"
            atomic_copy(proj.abspath(rel), target)
            copies.append(str(target))
    return copies


@job_command(GENERATE, arguments=_arguments, skip=("count", "width", "height"))
def cmd_generate(args: argparse.Namespace) -> int:
    from engine.atomic import check_writable_folder

    if args.out is not None:  # before anything is made or stored
        check_writable_folder(args.out, "--out")
    width, height = _size(args.size)
    extra = {"count": args.count, "width": width, "height": height,
             "boxes": _boxes(args.box), "recipe": _recipe(args.project, args.recipe)}
    params = params_from_args(GENERATE.params, args,
                              **{k: v for k, v in extra.items() if v is not None})
    result = run_job_in_cli(GENERATE, params, args)
    copies = _copy_out(args.project, result, args.out) if args.out else []
    if args.json:
        print(json.dumps({**result.to_dict(), "copies": copies}, indent=2))
    else:
        print(result.summary())
        for path in copies:
            print(f"  {path}")
    return EXIT_OK
