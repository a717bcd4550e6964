"""`mycanvas rate` and `mycanvas trash`: a picture's stars and the gallery's trash, the same
project functions the Gallery page calls (engine/project/gallery.py, trash.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.cli.progress import EXIT_OK
from engine.cli.registry import command
from engine.errors import InputError


def _rate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("project", type=Path, help="the project folder")
    p.add_argument("stars", type=int, help="1 to 5 stars; 0 clears the rating")
    p.add_argument("ids", type=int, nargs="+", metavar="ID",
                   help="the pictures (their ids, as `mycanvas gallery` lists them)")


@command("rate", "rate pictures 1-5 stars (0 clears the rating)", _rate_arguments)
def cmd_rate(args: argparse.Namespace) -> int:
    from engine.project import Project

    if not 0 <= args.stars <= 5:
        raise InputError(f"stars must be 0 to 5 (0 clears the rating), got {args.stars}")
    with Project.open(args.project) as project:
        count = project.set_rating(args.ids, args.stars or None)
    what = "Cleared the rating of" if not args.stars else f"Rated {args.stars}★:"
    print(f"{what} {count} picture{'s' * (count != 1)}.")
    return EXIT_OK


def _trash_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("project", type=Path, help="the project folder")
    p.add_argument("action", choices=("list", "restore", "empty"),
                   help="list the trash, restore pictures from it, or empty it for good")
    p.add_argument("ids", type=int, nargs="*", metavar="ID",
                   help="restore: the pictures to bring back (all when none given); "
                        "empty: only these")
    p.add_argument("--yes", action="store_true", help="empty without asking")
    p.add_argument("--json", action="store_true", help="list: machine-readable output")


@command("trash", "the gallery's trash: list, restore or empty it", _trash_arguments)
def cmd_trash(args: argparse.Namespace) -> int:
    import json

    from engine.cli.gallery import _line
    from engine.project import GalleryQuery, Project

    with Project.open(args.project) as project:
        trashed = project.gallery(GalleryQuery(trash="trash", sort="newest"))
        if args.action == "list":
            if args.json:
                print(json.dumps([p.to_dict() for p in trashed], indent=2,
                                 ensure_ascii=False))
                return EXIT_OK
            for picture in trashed:
                print(f"{_line(picture)}  (deleted {picture.generation.deleted_at})")
            print(f"{len(trashed)} picture(s) in the trash.")
            return EXIT_OK
        if args.action == "restore":
            ids = args.ids or [p.id for p in trashed]
            count = project.restore_generations(ids)
            print(f"Restored {count} picture{'s' * (count != 1)} to the gallery.")
            return EXIT_OK
        ids = args.ids or None
        count = len(trashed) if ids is None else \
            sum(1 for p in trashed if p.id in set(args.ids))
        if not count:
            print("Nothing to empty: the trash holds none of these pictures.")
            return EXIT_OK
        if not args.yes:
            if not sys.stdin.isatty():
                raise InputError("nothing deleted: confirm with --yes when not asked at a "
                                 "terminal")
            answer = input(f"Delete {count} picture(s) and their scores for good? [y/N] ")
            if answer.strip().lower() not in {"y", "yes"}:
                print("Nothing deleted.")
                return EXIT_OK
        count = project.empty_trash(ids)
    print(f"Deleted {count} picture{'s' * (count != 1)} for good.")
    return EXIT_OK
