"""The table of `mycanvas` subcommands. Each CLI module registers its own with `command`
(hand-made arguments) or `job_command` (arguments made from a job's declared parameters)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from engine.cli.arguments import add_params_arguments
from engine.jobs.declaration import JobDeclaration

Run = Callable[[argparse.Namespace], int]
AddArguments = Callable[[argparse.ArgumentParser], object]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Run


COMMANDS: dict[str, Command] = {}


def command(name: str, help_text: str, arguments: AddArguments | None = None
            ) -> Callable[[Run], Run]:
    """Register a subcommand with hand-made arguments."""

    def deco(fn: Run) -> Run:
        def add(p: argparse.ArgumentParser) -> None:
            if arguments is not None:
                arguments(p)

        COMMANDS[name] = Command(name, help_text, add, fn)
        return fn

    return deco


def job_command(decl: JobDeclaration, name: str | None = None,
                arguments: AddArguments | None = None, skip: tuple[str, ...] = ()
                ) -> Callable[[Run], Run]:
    """Register the subcommand of a job: its arguments are the job's parameter fields (less
    `skip`), plus what `arguments` adds for the fields the command builds itself."""

    def deco(fn: Run) -> Run:
        def add(p: argparse.ArgumentParser) -> None:
            add_params_arguments(p, decl.params, skip)
            if arguments is not None:
                arguments(p)

        COMMANDS[name or decl.name] = Command(name or decl.name, decl.help, add, fn)
        return fn

    return deco

