"""Commands that are not a stage: doctor, new, info, models, repair."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine import __version__
from engine.cli.arguments import params_from_args
from engine.cli.progress import EXIT_OK, run_job_in_cli
from engine.cli.registry import command, job_command
from engine.jobs.builtin import ENSURE_MODELS, REPAIR_PROJECT
from engine.text import printable


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


def _calibration(plan: Any, measure: bool) -> dict[str, Any] | None:
    """The CPU's calibration for Personalize's plans (measured now when asked)."""
    if plan.device != "cpu":
        return None
    from engine.personalize import calibrate_device, load_calibration

    cal = calibrate_device(plan) if measure else load_calibration(plan.cpu_kind)
    if cal is None:
        return {"summary": f"{plan.cpu_kind} CPU, not calibrated yet (doctor --calibrate)"}
    fp32 = cal.rates["float32"]
    summary = (f"{cal.machine['cpu']} ({plan.cpu_kind}), {cal.machine['threads']} thread(s): "
               f"float32 conv {fp32['conv'] / 1e9:.0f}, linear {fp32['linear'] / 1e9:.0f}, "
               f"attention {fp32['attention'] / 1e9:.0f} GFLOP/s; measured in "
               f"{cal.seconds:.1f} s on {cal.measured_at[:10]}")
    return {**cal.to_dict(), "summary": summary}


@command("doctor", "device, memory, versions and which models are present", lambda p: (
    p.add_argument("--json", action="store_true", help="machine-readable output"),
    p.add_argument("--device", help="auto, cuda, cuda:N, mps or cpu"),
    p.add_argument("--disk", action="store_true",
                   help="every place the app stores data, with its size"),
    p.add_argument("--calibrate", action="store_true",
                   help="measure this CPU's speed again for Personalize's plans (seconds)"),
))
def cmd_doctor(args: argparse.Namespace) -> int:
    if args.disk:
        return _doctor_disk(args)
    from engine.dataset import openvino_status
    from engine.device import GIB, plan_device
    from engine.models.profiles import get_profile, profile_names, role_status
    from engine.paths import config_dir, data_dir
    from engine.settings import load_settings

    settings = load_settings()
    plan = plan_device(args.device or settings.device, precision=settings.precision)
    report: dict[str, Any] = {
        "device": plan.device, "dtype": plan.dtype, "autocast_dtype": plan.autocast_dtype,
        "precision": plan.precision_note or plan.dtype, "precision_setting": settings.precision,
        "free_memory_gib": None if plan.free_memory is None else round(plan.free_memory / GIB, 1),
        "memory_savers": plan.describe(), "versions": _versions(),
        "openvino": openvino_status() if plan.device == "cpu" else None,
        "data_dir": str(data_dir()), "config_dir": str(config_dir()),
        "default_profile": settings.profile or get_profile().name, "profiles": {},
        "cpu_kind": plan.cpu_kind or None, "calibration": _calibration(plan, args.calibrate),
    }
    for name in profile_names():
        prof = get_profile(name)
        report["profiles"][name] = {
            role: {"present": st.present, "state": st.mark, "usable": st.usable,
                   "path": str(st.path) if st.path else None, "source": st.source,
                   "note": st.note}
            for role in prof.roles
            for st in [role_status(prof, role, settings.role_overrides, verify=True)]
        }
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    print(f"MyCanvas Studio {__version__}")
    print(f"device:   {plan.describe()}")
    if report["openvino"]:
        print(f"openvino: {report['openvino']}")
    if report["calibration"]:
        print(f"speed:    {report['calibration']['summary']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    print(f"data:     {report['data_dir']}")
    for name, roles in report["profiles"].items():
        tag = " (default)" if name == report["default_profile"] else ""
        print(f"profile {name}{tag}: {get_profile(name).label}")
        for role, st in roles.items():
            where = st["path"] or st["source"]
            note = f" — {st['note']}" if st["note"] else ""
            print(f"  {role:<10} {st['state']:<8} {where}{note}")
    return EXIT_OK


def _doctor_disk(args: argparse.Namespace) -> int:
    from engine.models.storage import storage_places
    from engine.personalize import format_bytes
    from engine.settings import load_settings

    places = storage_places(load_settings().recent_projects)
    if args.json:
        print(json.dumps([{"kind": p.kind, "label": p.label, "path": str(p.path),
                           "bytes": p.size, "exists": p.exists} for p in places], indent=2))
        return EXIT_OK
    for place in places:
        size = format_bytes(place.size) if place.exists else "absent"
        print(f"{place.kind:<15} {size:>10}  {place.label}: {place.path}")
    print(f"{'total':<15} {format_bytes(sum(p.size for p in places)):>10}  (each file once)")
    print("warm models live in memory only, in the window's worker process")
    return EXIT_OK


@command("new", "create a project folder", lambda p: (
    p.add_argument("project", type=Path, help="folder to create"),
    p.add_argument("--name", help="project name (default: the folder's name)"),
))
def cmd_new(args: argparse.Namespace) -> int:
    from engine.project import Project

    with Project.create(args.project, args.name or args.project.name) as project:
        print(f"Created project {project.meta('name')!r} at {args.project}")
    return EXIT_OK


@command("info", "what a project holds", lambda p: (
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
        print(f"{key:>16}: {printable(str(value))}")
    for c in concepts:
        token, name = printable(str(c["token"])), printable(str(c["name"]))
        print(f"  {token:<16} {name} ({c['class_word']}), {c['photos']} photo(s)")
    return EXIT_OK


def _remove_models(args: argparse.Namespace) -> int:
    from engine.errors import InputError
    from engine.models.storage import plan_removal, remove
    from engine.personalize import format_bytes

    if not args.profile:
        raise InputError("say which profile's downloads to remove: mycanvas models remove "
                         "PROFILE")
    plan = plan_removal(args.profile)
    for line in plan.kept:
        print(f"keeping {line}")
    if not plan.paths:
        print(f"Nothing of profile {args.profile!r} to remove")
        return EXIT_OK
    for path in plan.paths:
        print(f"delete  {path}")
    question = (f"Delete these {len(plan.paths)} files and folders of profile "
                f"{args.profile!r} ({format_bytes(plan.size)})? [y/N] ")
    if not args.yes:
        if not sys.stdin.isatty():
            raise InputError("nothing deleted: confirm with --yes when not asked at a terminal")
        if input(question).strip().lower() not in {"y", "yes"}:
            print("Nothing deleted")
            return EXIT_OK
    remove(plan)
    print(f"Removed profile {args.profile!r}'s downloads: {format_bytes(plan.size)} freed")
    return EXIT_OK


@job_command(REPAIR_PROJECT, name="repair", arguments=lambda p: p.add_argument(
    "--json", action="store_true", help="the full report as JSON"))
def cmd_repair(args: argparse.Namespace) -> int:
    report = run_job_in_cli(REPAIR_PROJECT, params_from_args(REPAIR_PROJECT.params, args), args)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return EXIT_OK


@command("models", "list profiles, make a profile's models present (download/build), or "
         "remove a profile's downloads", lambda p: (
    p.add_argument("action", choices=["list", "download", "remove"]),
    p.add_argument("profile", nargs="?", help="profile to download or remove (default for "
                   "download: the settings' one)"),
    p.add_argument("--role", action="append", help="only this role (repeatable)"),
    p.add_argument("--yes", action="store_true", help="remove without asking"),
))
def cmd_models(args: argparse.Namespace) -> int:
    from engine.models.profiles import get_profile, profile_names

    if args.action == "remove":
        return _remove_models(args)

    if args.action == "list":
        for name in profile_names():
            prof = get_profile(name)
            tag = " [test models]" if prof.test_models else ""
            print(f"{name:<8} {prof.label}{tag}: {prof.description}")
        return EXIT_OK
    from engine.settings import load_settings

    settings = load_settings()
    params = ENSURE_MODELS.params(profile=args.profile or settings.profile or None,
                                  roles=args.role, overrides=dict(settings.role_overrides))
    print(run_job_in_cli(ENSURE_MODELS, params, args).summary())
    return EXIT_OK
