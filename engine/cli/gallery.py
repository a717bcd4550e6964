"""`mycanvas gallery`: the generated pictures, filtered and sorted like the Gallery page."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from engine.cli.progress import EXIT_OK
from engine.cli.registry import command
from engine.errors import InputError
from engine.text import printable

if TYPE_CHECKING:
    from engine.project import GalleryImage


def _arguments(p: argparse.ArgumentParser) -> None:
    from engine.project import SORTS

    p.add_argument("project", type=Path, help="the project folder")
    p.add_argument("--run", type=int, metavar="RUN", help="only pictures of this run")
    p.add_argument("--concept", metavar="NAME", help="only pictures naming this concept "
                   "(its name, token or id)")
    p.add_argument("--text", default="", help="only prompts containing this text")
    p.add_argument("--min-cp", type=float, help="CP-CLIP at least this")
    p.add_argument("--max-cp", type=float, help="CP-CLIP at most this")
    p.add_argument("--min-ti", type=float, help="TI-CLIP at least this")
    p.add_argument("--max-ti", type=float, help="TI-CLIP at most this")
    p.add_argument("--since", help="made on or after this date (2024-05-31) or time")
    p.add_argument("--until", help="made on or before this date or time")
    p.add_argument("--favourites", action="store_true", help="only favourites")
    p.add_argument("--min-rating", type=int, metavar="STARS", help="rated at least this (1-5)")
    guided = p.add_mutually_exclusive_group()
    guided.add_argument("--guided", dest="guided", action="store_const", const=True,
                        help="only layout-guided pictures")
    guided.add_argument("--unguided", dest="guided", action="store_const", const=False,
                        help="only unguided pictures")
    scored = p.add_mutually_exclusive_group()
    scored.add_argument("--scored", dest="scored", action="store_const", const=True,
                        help="only scored pictures")
    scored.add_argument("--unscored", dest="scored", action="store_const", const=False,
                        help="only pictures not scored yet")
    p.add_argument("--no-test-models", dest="no_test", action="store_true",
                   help="leave out pictures made with the test models (noise)")
    p.add_argument("--trash", action="store_true", help="list the trash instead")
    p.add_argument("--sort", choices=SORTS, default="newest", help="order (default newest)")
    p.add_argument("--limit", type=int, help="at most this many")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _concept_id(project: object, value: str | None) -> int | None:
    if value is None:
        return None
    from engine.project import Project

    assert isinstance(project, Project)
    found = project.concept_by_name(value)
    if found is None:
        found = next((c for c in project.concepts() if c.token == value), None)
    if found is None and value.isdigit():
        found = project.concept(int(value))
    if found is None:
        names = ", ".join(c.name for c in project.concepts()) or "none yet"
        raise InputError(f"No concept {value!r} in this project (concepts: {names})")
    return found.id


def _test_profiles() -> tuple[str, ...]:
    from engine.models.profiles import get_profile, profile_names

    return tuple(n for n in profile_names() if get_profile(n).test_models)


def _test_made(picture: GalleryImage) -> bool:
    """Made with a test profile's models, as its recipe says (the picture is noise)."""
    from engine.models.profiles import made_with_test_models

    return made_with_test_models(picture.generation.settings)


def _line(picture: object) -> str:
    from engine.project import GalleryImage

    assert isinstance(picture, GalleryImage)
    g = picture.generation

    def num(v: float | None) -> str:
        return "  —  " if v is None else f"{v:5.3f}"

    marks = ("★" if g.favourite else " ") + (str(g.rating) if g.rating else " ")
    run = str(g.run_id) if g.run_id is not None else "-"
    tag = " [test model]" if picture.test_model or _test_made(picture) else ""
    prompt = printable(g.prompt)  # one line: no newline or carriage return of its own
    prompt = prompt if len(prompt) <= 70 else prompt[:69] + "…"
    return f"#{g.id:<5} run {run:<4} CP {num(picture.cp_clip)}  TI {num(picture.ti_clip)}  " \
           f"{marks}  {prompt}{tag}"


@command("gallery", "list generated pictures with their scores (filters like the Gallery "
         "page)", _arguments)
def cmd_gallery(args: argparse.Namespace) -> int:
    from engine.project import GalleryQuery, Project
    from engine.score import TEST_MODEL_NOTE

    with Project.open(args.project) as project:
        query = GalleryQuery(
            run_id=args.run, concept_id=_concept_id(project, args.concept), text=args.text,
            min_cp=args.min_cp, max_cp=args.max_cp, min_ti=args.min_ti, max_ti=args.max_ti,
            since=args.since, until=args.until, favourites=args.favourites,
            min_rating=args.min_rating, guided=args.guided, scored=args.scored,
            trash="trash" if args.trash else "live", sort=args.sort, limit=args.limit,
            exclude_profiles=_test_profiles() if args.no_test else ())
        pictures = project.gallery(query)
    if args.json:
        print(json.dumps([p.to_dict() for p in pictures], indent=2, ensure_ascii=False))
        return EXIT_OK
    for picture in pictures:
        print(_line(picture))
    where = "in the trash" if args.trash else "found"
    print(f"{len(pictures)} picture(s) {where}.")
    if any(p.test_model or _test_made(p) for p in pictures):
        print(f"[test model]: {TEST_MODEL_NOTE}.")
    return EXIT_OK
