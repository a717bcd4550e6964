"""The shape of the engine that keeps it easy to extend: every declared job and command
resolves, stages reach each other only through their public API, and the packages a CLI or
a window loads at start stay cheap to import."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from engine.jobs import JobParams, JobResult, declarations, resolve_job
from engine.jobs.registry import stage_packages

REPO = Path(__file__).resolve().parent.parent
# Every engine package with a jobs module is a stage (the registry's own rule).
STAGES = tuple(p.split(".", 1)[1] for p in stage_packages())


def test_the_pipeline_stages_are_there():
    assert {"intake", "segment", "plan", "dataset", "train"} <= set(STAGES)


def test_the_layers_contract_names_every_stage():
    """The one line a new stage adds outside its own files: its place among the stages."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    layers = next(c["layers"] for c in config["tool"]["importlinter"]["contracts"]
                  if c["type"] == "layers")
    stage_line = next(line for line in layers if "engine.intake" in line)
    named = {part.strip() for part in stage_line.replace("|", ":").split(":")}
    missing = sorted(f"engine.{s}" for s in STAGES if f"engine.{s}" not in named)
    assert not missing, f"add {missing} to the stages line of the layers contract"


@pytest.mark.parametrize("name", sorted(declarations()))
def test_every_declared_job_resolves(name):
    decl = declarations()[name]
    assert callable(resolve_job(decl.target)), decl.target
    assert dataclasses.is_dataclass(decl.params) and issubclass(decl.params, JobParams)
    assert decl.result is None or issubclass(decl.result, JobResult) or \
        hasattr(decl.result, "summary")
    for field in dataclasses.fields(decl.params):
        assert field.metadata.get("help"), f"{name}: {field.name} has no help for people"


def test_every_command_builds_and_prints_its_help(capsys):
    from engine.cli import COMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    for name, command_parser in sub.choices.items():
        assert command_parser.format_help().startswith("usage: mycanvas " + name), name


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
    return out


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_uses_other_stages_only_through_their_public_api(stage):
    """engine.<other> (its __init__) or engine.<other>.jobs (its declarations), never a
    module inside it."""
    found = []
    for path in sorted((REPO / "engine" / stage).rglob("*.py")):
        for module in _imports(path):
            parts = module.split(".")
            if len(parts) >= 3 and parts[0] == "engine" and parts[1] in STAGES and \
                    parts[1] != stage and parts[2] != "jobs":
                found.append(f"{path.relative_to(REPO)}: {module}")
    assert not found, found


def test_the_stage_packages_and_the_cli_are_cheap_to_import():
    probe = ("import sys, engine.cli as cli; cli.build_parser(); "
             + "; ".join(f"import engine.{s}" for s in STAGES)
             + "; heavy = [m for m in ('torch', 'PIL', 'numpy', 'cv2', 'diffusers', "
             "'llama_cpp', 'PySide6') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=REPO, check=True, timeout=60).stdout.strip()
    assert out == "[]"


def test_the_engine_folder_reads_like_the_pipeline():
    """Foundation modules, the layers below the stages, and one folder per stage that
    declares its jobs (engine/README.md)."""
    entries = {p.name for p in (REPO / "engine").iterdir()
               if not p.name.startswith("__") and p.name != "README.md"}
    folders = {p for p in entries if (REPO / "engine" / p).is_dir()}
    for folder in folders - {"cli", "jobs", "models", "project"}:
        assert (REPO / "engine" / folder / "jobs.py").is_file(), f"{folder} is no stage"
    assert {"cli", "jobs", "models", "project", *STAGES} <= folders
    assert entries - folders <= {"errors.py", "paths.py", "atomic.py", "settings.py",
                                 "device.py", "masks.py", "text.py", "reporting.py", "checks.py",
                                 "lazy.py", "image_files.py"}
