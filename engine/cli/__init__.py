"""`mycanvas` subcommands: the same code paths as the window, headless.

    registry.py    the command table; `command` and `job_command` register into it
    arguments.py   a job's declared parameters as arguments, and back
    progress.py    run a job with a progress bar, Ctrl-C to cancel, the job journal
    general.py     doctor, new, info, models, repair
    desktop.py     desktop install|uninstall: the menu entry, icon and MIME type
    <stage>.py     one module per stage (intake, segment, plan, dataset, train, ...)

Every module of this package is loaded when the parser is built: a new stage's CLI module
registers its commands by being here. Each is cheap to import (heavy libraries are imported
inside the commands), so `mycanvas --help` stays fast. A failure prints one line (the reason)
and exits non-zero; `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from engine import __version__
from engine.cli.output import printable_output
from engine.cli.progress import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CancelledByUser,
    run_job_in_cli,
)
from engine.cli.registry import COMMANDS, command, job_command
from engine.errors import MyCanvasError
from engine.jobs.running import describe_failure

__all__ = [
    "COMMANDS",
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "arguments",
    "build_parser",
    "command",
    "job_command",
    "main",
    "run_job_in_cli",
]

_INFRASTRUCTURE = frozenset({"arguments", "progress", "registry"})


def load_command_modules() -> list[str]:
    """Import every command module of this package (each registers its commands)."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__)
                   if m.name not in _INFRASTRUCTURE)
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    return names


def build_parser() -> argparse.ArgumentParser:
    load_command_modules()
    parser = argparse.ArgumentParser(
        prog="mycanvas",
        description="MyCanvas Studio: your own pets and things, together in generated pictures. "
        "Without a command, opens the app window.",
    )
    parser.add_argument("--version", action="version", version=f"mycanvas {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on failure")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in sorted(COMMANDS):
        cmd = COMMANDS[name]
        cmd.add_arguments(sub.add_parser(name, help=cmd.help, description=cmd.help))
    return parser


def _quiet_stdout() -> None:
    """The reader of our output went away (`mycanvas info P | head -1`): send the rest of
    it, and Python's final flush at exit, nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file behind stdout (tests)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    with printable_output():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    run = COMMANDS[args.command].run
    from engine.project import set_program

    set_program(f"mycanvas {args.command}")  # how a job's lock names this process
    try:
        code = run(args)
        sys.stdout.flush()  # a closed pipe shows up here, not as a message at exit
        return code
    except BrokenPipeError:
        # A closed pipe is a normal end: the reader has all it wanted.
        _quiet_stdout()
        return EXIT_OK
    except CancelledByUser:
        print("Cancelled.", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print("Aborted.", file=sys.stderr)
        return EXIT_CANCELLED
    except MyCanvasError as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"mycanvas {args.command}: {describe_failure(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"mycanvas {args.command}: {describe_failure(exc)} (run with --debug for "
              "details)", file=sys.stderr)
        return EXIT_FAILED
