"""Which jobs exist: every stage package declares its jobs once, in its `jobs` module.

The registry finds them by walking the engine's packages: a package with a `jobs` module that
holds `JOBS` contributes its declarations. Nothing else has to list a new stage: its package,
its declarations and its CLI module are all it takes. Declaration modules are cheap to import
(no torch, no PIL); the job functions are imported only when a job runs.

Tests may register an untyped job (a plain function with keyword parameters) by target.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import threading
from collections.abc import Callable
from typing import Any

from engine.errors import MyCanvasError
from engine.jobs.declaration import JobDeclaration

# Engine packages that are layers below the stages, never stages themselves.
_NOT_STAGES = frozenset({"cli", "jobs", "models", "project"})

_lock = threading.Lock()
_declared: dict[str, JobDeclaration] | None = None
# name -> target: untyped jobs registered at run time, or a stand-in for a declared job
# (tests script a job this way; the declared parameters still apply).
target_overrides: dict[str, str] = {}


def stage_packages() -> list[str]:
    """Engine sub-packages that declare jobs (in pipeline order where they say so)."""
    import engine

    out = []
    for info in pkgutil.iter_modules(engine.__path__):
        if info.ispkg and info.name not in _NOT_STAGES and \
                importlib.util.find_spec(f"engine.{info.name}.jobs") is not None:
            out.append(f"engine.{info.name}")
    return sorted(out)


def declarations() -> dict[str, JobDeclaration]:
    """Every declared job by name: the engine's own (engine.jobs.builtin) and the stages'."""
    global _declared
    with _lock:
        if _declared is None:
            found: dict[str, JobDeclaration] = {}
            modules = ["engine.jobs.builtin", *(f"{p}.jobs" for p in stage_packages())]
            for module in modules:
                for decl in getattr(importlib.import_module(module), "JOBS", ()):
                    if decl.name in found:
                        raise RuntimeError(f"job {decl.name!r} is declared twice "
                                           f"({found[decl.name].target}, {decl.target})")
                    found[decl.name] = decl
            _declared = found
        return _declared


def declaration(name: str) -> JobDeclaration | None:
    return declarations().get(name)


def register_job(name: str, target: str) -> None:
    """Register an untyped job `target` ("package.module:function") under `name` (tests)."""
    if ":" not in target:
        raise ValueError(f"job target must be 'module:function', got {target!r}")
    target_overrides[name] = target


def job_target(name: str) -> str:
    if name in target_overrides:
        return target_overrides[name]
    decl = declaration(name)
    if decl is None:
        raise MyCanvasError(f"Unknown job {name!r}")
    return decl.target


def resolve_job(target: str) -> Callable[..., Any]:
    module_name, func_name = target.split(":", 1)
    return getattr(importlib.import_module(module_name), func_name)


def owned_elsewhere(name: str, params: Any) -> str | None:
    """Why job `name` with `params` cannot start now (another process works on what it
    would work on, named), or None. Bad parameters are the job's own to report: None."""
    decl = declaration(name)
    if decl is None or not decl.owner_check:
        return None
    try:
        if isinstance(params, dict):
            params = decl.params.from_dict(params)
        return resolve_job(decl.owner_check)(params)
    except MyCanvasError:
        return None
