"""`mycanvas` subcommands: the same code paths as the GUI, headless.

Heavy libraries are imported inside the commands, so `mycanvas --help` stays fast. A failure
prints one line (the reason) and exits non-zero; `--debug` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine import __version__
from engine.errors import MyCanvasError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130

# Subcommand name -> (help, add_arguments, run). Stage modules add theirs via `command`.
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help_text: str, stage: bool = False):
    """Register a subcommand. Stage commands get --profile and --device."""

    def deco(fn: Callable[[argparse.Namespace], int]):
        def add(p: argparse.ArgumentParser) -> None:
            args_fn = getattr(fn, "arguments", None)
            if args_fn:
                args_fn(p)
            if stage:
                p.add_argument("--profile", help="model profile (default: the settings' one)")
                p.add_argument("--device", help="auto, cuda, cuda:N, mps or cpu")

        COMMANDS[name] = (help_text, add, fn)
        return fn

    return deco


def arguments(add: Callable[[argparse.ArgumentParser], None]):
    def deco(fn):
        fn.arguments = add
        return fn

    return deco


# --------------------------------------------------------------------------- progress


class ProgressPrinter:
    """Draws job events on stderr: a bar with ETA on a terminal, sparse lines otherwise."""

    def __init__(self, stream: Any = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.quiet = quiet
        self._last_line = 0.0
        self._drawn = False

    def __call__(self, event: Any) -> None:
        from engine.jobs import JobLog, JobProgress

        if self.quiet:
            return
        if isinstance(event, JobProgress):
            self._progress(event)
        elif isinstance(event, JobLog):
            self._clear()
            print(f"{event.level}: {event.text}" if event.level != "info" else event.text,
                  file=self.stream)

    def _progress(self, ev: Any) -> None:
        from engine.jobs import format_eta

        pct = int(ev.fraction * 100)
        text = f"{pct:3d}% {ev.step}/{ev.total} ETA {format_eta(ev.eta_seconds)} {ev.message}"
        if self.tty:
            filled = int(ev.fraction * 24)
            line = f"\r[{'#' * filled}{'.' * (24 - filled)}] {text}"[:118]
            self.stream.write(line.ljust(119))
            self.stream.flush()
            self._drawn = True
        elif time.monotonic() - self._last_line > 2.0 or ev.step >= ev.total:
            print(text, file=self.stream)
            self._last_line = time.monotonic()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * 119 + "\r")
            self._drawn = False

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False


def run_job_in_cli(name: str, params: dict[str, Any], args: argparse.Namespace) -> Any:
    """Run a job inline with progress; Ctrl-C cancels at the next step boundary. The job is
    journaled in its project, so a run killed here is offered for resuming later."""
    from engine.jobs import CancelToken, JobCancelled, JobEvent, JobFailed, JobFinished, run_inline
    from engine.jobs.journal import JournalWriter

    printer = ProgressPrinter(quiet=getattr(args, "quiet", False))
    journal = JournalWriter()
    token = CancelToken()

    def sink(event: JobEvent) -> None:
        journal(event)
        printer(event)

    def on_sigint(_sig: int, _frame: Any) -> None:
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        print("\nCancelling at the next step (Ctrl-C again to abort)…", file=sys.stderr)

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        end = run_inline(name, params, sink, token)
    finally:
        signal.signal(signal.SIGINT, old)
        printer.close()
        journal.close()
    if isinstance(end, JobFinished):
        return end.result
    if isinstance(end, JobCancelled):
        raise CancelledByUser()
    assert isinstance(end, JobFailed)
    if getattr(args, "debug", False):
        print(end.detail, file=sys.stderr)
    raise MyCanvasError(end.reason)


class CancelledByUser(Exception):
    pass


# --------------------------------------------------------------------------- commands


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0], "mycanvas-studio": __version__}
    for dist in ("torch", "torchvision", "diffusers", "transformers", "accelerate",
                 "huggingface_hub", "open_clip_torch", "segment-anything", "llama-cpp-python",
                 "PySide6-Essentials"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out


@command("doctor", "device, memory, versions and which models are present")
@arguments(lambda p: (
    p.add_argument("--json", action="store_true", help="machine-readable output"),
    p.add_argument("--device", help="auto, cuda, cuda:N, mps or cpu"),
))
def cmd_doctor(args: argparse.Namespace) -> int:
    from engine.device import GIB, plan_device
    from engine.models.profiles import get_profile, profile_names, role_status
    from engine.paths import config_dir, data_dir
    from engine.settings import load_settings

    settings = load_settings()
    plan = plan_device(args.device or settings.device)
    report: dict[str, Any] = {
        "device": plan.device, "dtype": plan.dtype,
        "free_memory_gib": None if plan.free_memory is None else round(plan.free_memory / GIB, 1),
        "memory_savers": plan.describe(), "versions": _versions(),
        "data_dir": str(data_dir()), "config_dir": str(config_dir()),
        "default_profile": settings.profile or get_profile().name, "profiles": {},
    }
    for name in profile_names():
        prof = get_profile(name)
        report["profiles"][name] = {
            role: {"present": st.present, "path": str(st.path) if st.path else None,
                   "source": st.source, "note": st.note}
            for role in prof.roles
            for st in [role_status(prof, role, settings.role_overrides)]
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print(f"MyCanvas Studio {__version__}")
    print(f"device:   {plan.describe()}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    print(f"data:     {report['data_dir']}")
    for name, roles in report["profiles"].items():
        tag = " (default)" if name == report["default_profile"] else ""
        print(f"profile {name}{tag}: {get_profile(name).label}")
        for role, st in roles.items():
            mark = "present" if st["present"] else "missing"
            where = st["path"] or st["source"]
            note = f" — {st['note']}" if st["note"] else ""
            print(f"  {role:<10} {mark:<8} {where}{note}")
    return EXIT_OK


@command("new", "create a project folder")
@arguments(lambda p: (
    p.add_argument("project", type=Path, help="folder to create"),
    p.add_argument("--name", help="project name (default: the folder's name)"),
))
def cmd_new(args: argparse.Namespace) -> int:
    from engine.project import Project

    with Project.create(args.project, args.name or args.project.name) as project:
        print(f"Created project {project.meta('name')!r} at {args.project}")
    return EXIT_OK


@command("info", "what a project holds")
@arguments(lambda p: (
    p.add_argument("project", type=Path),
    p.add_argument("--json", action="store_true"),
))
def cmd_info(args: argparse.Namespace) -> int:
    from engine.project import Project

    with Project.open(args.project) as project:
        summary = project.summary()
        concepts = [
            {"name": c.name, "token": c.token, "class_word": c.class_word,
             "photos": len(project.photos(c.id))}
            for c in project.concepts()
        ]
    if args.json:
        print(json.dumps({**summary, "concepts": concepts}, indent=2, default=str))
        return EXIT_OK
    for key, value in summary.items():
        print(f"{key:>16}: {value}")
    for c in concepts:
        print(f"  {c['token']:<16} {c['name']} ({c['class_word']}), {c['photos']} photo(s)")
    return EXIT_OK


@command("repair", "rebuild a damaged project catalogue from what can still be read")
@arguments(lambda p: (
    p.add_argument("project", type=Path),
    p.add_argument("--dry-run", action="store_true",
                   help="report what would be recovered; write nothing"),
    p.add_argument("--force", action="store_true",
                   help="rebuild even a catalogue that passes its checks"),
    p.add_argument("--json", action="store_true", help="the full report as JSON"),
))
def cmd_repair(args: argparse.Namespace) -> int:
    result = run_job_in_cli("repair-project", {"project": str(args.project),
                                               "dry_run": args.dry_run, "force": args.force},
                            args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(result["summary"])
    return EXIT_OK


@command("models", "list profiles, or make a profile's models present (download/build)")
@arguments(lambda p: (
    p.add_argument("action", choices=["list", "download"]),
    p.add_argument("profile", nargs="?", help="profile to download (default: the settings' one)"),
    p.add_argument("--role", action="append", help="only this role (repeatable)"),
))
def cmd_models(args: argparse.Namespace) -> int:
    from engine.models.profiles import get_profile, profile_names

    if args.action == "list":
        for name in profile_names():
            prof = get_profile(name)
            tag = " [test models]" if prof.test_models else ""
            print(f"{name:<8} {prof.label}{tag}: {prof.description}")
        return EXIT_OK
    from engine.settings import load_settings

    settings = load_settings()
    profile = args.profile or settings.profile or None
    result = run_job_in_cli(
        "ensure-models",
        {"profile": profile, "roles": args.role, "overrides": settings.role_overrides},
        args,
    )
    for role, path in result.items():
        print(f"{role:<10} {path}")
    return EXIT_OK


# --------------------------------------------------------------------------- entry


# Stage modules that register their own subcommands with @command. Each must be cheap to
# import (heavy libraries imported inside functions), so `mycanvas --help` stays fast.
COMMAND_MODULES: tuple[str, ...] = ("engine.cli.segment", "engine.plan.planner",
                                     "engine.dataset.build", "engine.train.training_job")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(module)
    parser = argparse.ArgumentParser(
        prog="mycanvas",
        description="MyCanvas Studio: your own pets and things, together in generated pictures. "
        "Without a command, opens the app window.",
    )
    parser.add_argument("--version", action="version", version=f"mycanvas {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on failure")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add, _run) in COMMANDS.items():
        add(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    _help, _add, run = COMMANDS[args.command]
    try:
        return run(args)
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
        print(f"mycanvas {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        print(f"mycanvas {args.command}: unexpected {type(exc).__name__}: {exc} "
              "(run with --debug for details)", file=sys.stderr)
        return EXIT_FAILED
