"""`mycanvas concept rename|delete`: a concept's name and token, or the concept with its
photos, masks and what was built from it (engine/project/concept_removal.py says what goes
and what stays; the Concepts page calls the same functions)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.cli.progress import EXIT_OK
from engine.cli.registry import command
from engine.errors import InputError


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("project", type=Path, help="the project folder")
    p.add_argument("action", choices=("rename", "delete", "show"),
                   help="rename (--name, --token), delete (with its photos, masks, dataset "
                        "items and layouts), or show what a delete would remove")
    p.add_argument("concept", help="the concept: its name, token or id")
    p.add_argument("--name", help="rename: the new name")
    p.add_argument("--token", help="rename: the new token, e.g. <mochi>; runs already trained "
                                   "keep the token they were trained on")
    p.add_argument("--yes", action="store_true", help="delete without asking")
    p.add_argument("--json", action="store_true", help="machine-readable output")


@command("concept", "rename a concept (name, token) or delete it with what was made from it",
         _arguments)
def cmd_concept(args: argparse.Namespace) -> int:
    from engine.cli.gallery import _concept_id
    from engine.project import Project

    with Project.open(args.project) as project:
        cid = _concept_id(project, args.concept)
        assert cid is not None
        if args.action == "rename":
            if args.name is None and args.token is None:
                raise InputError("say what changes: --name NEW and/or --token <new>")
            old = project.concept(cid)
            new = project.rename_concept(cid, args.name, args.token)
            print(f"{old.name} {old.token} is now {new.name} {new.token}.")
            if new.token != old.token:
                print(f"Runs already trained keep {old.token}: use it in prompts for them.")
            return EXIT_OK
        footprint = project.concept_footprint(cid)
        if args.action == "show":
            print(json.dumps(footprint.to_dict(), indent=2, ensure_ascii=False) if args.json
                  else footprint.describe())
            return EXIT_OK
        refusal = project.concept_refusal(cid, "delete")
        if refusal:
            raise InputError(refusal)
        print(footprint.describe())
        if not args.yes:
            if not sys.stdin.isatty():
                raise InputError("nothing deleted: confirm with --yes when not asked at a "
                                 "terminal")
            if input("Delete it? [y/N] ").strip().lower() not in {"y", "yes"}:
                print("Nothing deleted.")
                return EXIT_OK
        done = project.remove_concept(cid)
    print(f"Deleted {done.name} {done.token}: {', '.join(done.goes())}.")
    return EXIT_OK
