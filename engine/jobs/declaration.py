"""Declare a job once: its parameters and its result are dataclasses, its target a function.

    @dataclass(frozen=True, kw_only=True)
    class PlanParams(ModelParams):
        count: int = param(8, help="how many layouts", minimum=1, maximum=10_000)

    PLAN = JobDeclaration("plan", "engine.plan.planner:plan_job", PlanParams, PlanResult,
                          title="Plan layouts", help="plan layouts: scenes, captions, boxes")

From that one declaration the CLI builds its arguments (engine/cli/arguments.py), the window
builds typed parameters and shows each field's help, the worker calls `target(ctx, params)`,
and the job journal stores `params.to_dict()` so the job can be resumed later.

Parameters are checked by their annotated types when they are made: a bad value is an
InputError that names the field, wherever it came from (a flag, a form, a journal). A `bytes`
field (a brush stroke's pixels) is base64 text in `to_dict`, and taken back from it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Generic, TypeVar

from engine.checks import check_number, check_whole
from engine.errors import InputError

P = TypeVar("P", bound="JobParams")
S = TypeVar("S", bound="DeclaredSettings")


def param(default: Any = MISSING, *, help: str, default_factory: Any = MISSING,
          flag: str | None = None, positional: bool = False, cli: bool = True,
          choices: tuple[Any, ...] | None = None, metavar: str | None = None,
          minimum: float | None = None, maximum: float | None = None,
          nargs: str | int | None = None, above_minimum: bool = False) -> Any:
    """A parameter field. `help` is shown by the CLI and the window; `cli=False` keeps a field
    off the command line (it is filled from the settings); `minimum`/`maximum` bound numbers
    (`above_minimum`: the minimum itself is refused), `choices` any value."""
    meta = {"help": help, "flag": flag, "positional": positional, "cli": cli,
            "choices": choices, "metavar": metavar, "minimum": minimum, "maximum": maximum,
            "nargs": nargs, "above_minimum": above_minimum}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def field_label(name: str) -> str:
    return name.replace("_", "-")


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "text", bool: "true or false",
            list: "a list", dict: "a mapping", tuple: "a list"}.get(tp, getattr(tp, "__name__",
                                                                                str(tp)))


def _check(value: Any, tp: Any, label: str) -> Any:
    """`value` checked against the annotation `tp`; returns it (an int made float for a
    float field). Raises InputError naming `label`."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check(value, option, label)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(errors[0] if len(errors) == 1 else
                         f"{label} must be one of {', '.join(map(_type_name, options))}, "
                         f"got {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            allowed = ", ".join(map(str, typing.get_args(tp)))
            raise InputError(f"{label} must be one of {allowed}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"{label} must be a list, got {value!r}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        items = [_check(v, inner, f"{label}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise InputError(f"{label} must be a mapping, got {value!r}")
        key_t, val_t = typing.get_args(tp) or (Any, Any)
        return {_check(k, key_t, f"{label} key"): _check(v, val_t, f"{label}[{k!r}]")
                for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"{label} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{label} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value):
            raise InputError(f"{label} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise InputError(f"{label} must be text, got {value!r}")
        return value
    if tp is bytes and isinstance(value, str):  # as to_dict wrote it (the journal's JSON)
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise InputError(f"{label} must be bytes or base64 text, got {value[:40]!r}") \
                from None
    if isinstance(tp, type) and not isinstance(value, tp):
        raise InputError(f"{label} must be {_type_name(tp)}, got {value!r}")
    return value


class JobParams:
    """Base of every job's parameters: a frozen, keyword-only dataclass, checked on creation."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            label = field_label(f.name)
            value = _check(getattr(self, f.name), hints.get(f.name, Any), label)
            meta = f.metadata
            if value is not None and meta.get("choices") and value not in meta["choices"]:
                allowed = ", ".join(map(str, meta["choices"]))
                raise InputError(f"{label} must be one of {allowed}, got {value!r}")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                low, high = meta.get("minimum"), meta.get("maximum")
                if low is not None and (value < low or
                                        (meta.get("above_minimum") and value == low)):
                    above = "more than" if meta.get("above_minimum") else "at least"
                    raise InputError(f"{label} must be {above} {low:g}, got {value!r}")
                if high is not None and value > high:
                    raise InputError(f"{label} must be at most {high:g}, got {value!r}")
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Checks across fields; a subclass raises InputError naming what is wrong."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (the journal stores them): bytes as base64 text."""
        plain = dataclasses.asdict(self)  # type: ignore[call-overload]  # a dataclass subclass
        return {k: base64.b64encode(v).decode("ascii") if isinstance(v, bytes) else v
                for k, v in plain.items()}

    @classmethod
    def from_dict(cls: type[P], data: Mapping[str, Any]) -> P:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"Unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**dict(data))

    def replace(self: P, **changes: Any) -> P:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @classmethod
    def help_for(cls, name: str) -> str:
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name == name:
                return str(f.metadata.get("help", ""))
        raise KeyError(name)


class DeclaredSettings:
    """Base of a group of settings that a job's parameters carry as one mapping (TrainConfig,
    ExtractConfig: a run stores the mapping it started with, and a resume reads it back).
    Its fields are declared with `param()` like a job's, so the CLI's flags and the window's
    forms are made from them; each is checked when made, in engine.checks' wording with the
    field's own name. `KIND` names the group in the error for an unknown key."""

    KIND: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            _check_setting(f.name, getattr(self, f.name), hints.get(f.name, Any), f.metadata)
        self.check()

    def check(self) -> None:
        """Checks across fields; a subclass raises InputError naming what is wrong."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]  # a dataclass subclass

    @classmethod
    def from_dict(cls: type[S], data: Mapping[str, Any] | None) -> S:
        """The settings from JSON values; unknown keys are refused by name (a typo would
        otherwise silently run with the default)."""
        data = dict(data or {})
        unknown = sorted(set(data) - {f.name for f in fields(cls)})  # type: ignore[arg-type]
        if unknown:
            raise InputError(f"Unknown {cls.KIND} setting(s): {', '.join(unknown)}")
        return cls(**data)

    def with_changes(self: S, **changes: Any) -> S:
        return type(self).from_dict({**self.to_dict(), **changes})


def _check_setting(name: str, value: Any, tp: Any, meta: Mapping[str, Any]) -> None:
    """One declared setting checked by its type, bounds and choices (engine.checks' words)."""
    options = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union,
                                                               types.UnionType) else (tp,)
    if value is None and type(None) in options:
        return
    base = next((o for o in options if o is not type(None)), Any)
    low, high = meta.get("minimum"), meta.get("maximum")
    if base is bool:
        if not isinstance(value, bool):
            raise InputError(f"{name} must be true or false, got {value!r}")
    elif base is int:
        check_whole(name, value, -2**63 if low is None else int(low),
                    2**63 - 1 if high is None else int(high))
    elif base is float:
        check_number(name, value, -math.inf if low is None else low,
                     math.inf if high is None else high,
                     low_open=bool(meta.get("above_minimum")))
    elif base is str and not isinstance(value, str):
        raise InputError(f"{name} must be text, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        raise InputError(f"{name} must be one of {', '.join(map(str, meta['choices']))}; "
                         f"got {value!r}")


@dataclass(frozen=True, kw_only=True)
class ProjectParams(JobParams):
    project: str = param(positional=True, help="the project folder")

    def check(self) -> None:
        if not self.project:
            raise InputError("project must be the path of a project folder")


@dataclass(frozen=True, kw_only=True)
class ModelParams(ProjectParams):
    """A job that loads models: which profile, and the user's per-role model files."""

    profile: str | None = param(None, help="model profile (default: the settings' one)")
    overrides: dict[str, str] | None = param(
        None, cli=False, help="a weights folder or file per role (default: the settings')")


@dataclass(frozen=True, kw_only=True)
class StageParams(ModelParams):
    """A job that runs models on a device it can choose."""

    device: str | None = param(None, help="auto, cuda, cuda:N, mps or cpu "
                                          "(default: the settings' one)")


class JobResult:
    """Base of every job's result: a dataclass the CLI prints and the window shows, through
    the same `summary()`."""

    def summary(self) -> str:
        return ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]  # a dataclass subclass


@dataclass(frozen=True)
class JobDeclaration(Generic[P]):
    name: str  # the registry name, also the CLI command's unless the CLI module says otherwise
    target: str  # "package.module:function", imported only when the job runs
    params: type[P]
    result: type[Any] | None = None
    title: str | Callable[[Any], str] = ""  # for people; a function of the params, or text
    help: str = ""  # one line, the CLI's help for the command
    resumable: bool = False  # running it again with the same params continues the work
    # What it changes in the project ("concepts", "photos", "layouts", "dataset", "runs",
    # "generations"): views showing those refresh when it ends.
    changes: tuple[str, ...] = ()
    # "module:function" of (params) -> the one-line refusal when another process owns what
    # the job would work on (a run, a build), else None: a caller asks before queueing it.
    # The job itself claims what it works on when it starts; this only answers sooner.
    owner_check: str = ""
    # When it finishes, which earlier interrupted rows of it in the journal it completed:
    # those whose resume parameters named here are equal to its own (None: all of them equal;
    # () any earlier one on the project). Those rows are settled as resumed.
    continues_on: tuple[str, ...] | None = None

    KINDS: ClassVar[tuple[str, ...]] = ("concepts", "photos", "layouts", "dataset", "runs",
                                        "generations")

    def __post_init__(self) -> None:
        if ":" not in self.target:
            raise ValueError(f"job target must be 'module:function', got {self.target!r}")
        bad = set(self.changes) - set(self.KINDS)
        if bad:
            raise ValueError(f"job {self.name}: unknown kinds of change {sorted(bad)}")

    def title_for(self, params: Any) -> str:
        if callable(self.title):
            return str(self.title(params))
        return self.title or self.name
