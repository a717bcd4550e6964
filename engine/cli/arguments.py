"""Command-line arguments made from a job's declared parameters, and parameters from them.

Each field of a JobParams dataclass becomes an argument: positional ones in field order,
the others as `--field-name` flags (or the flag the field names), with the field's help, its
default shown, its choices. A flag not given leaves the dataclass default, so the CLI and the
window share every default.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import MISSING, fields
from typing import Any

from engine.jobs.declaration import DeclaredSettings, JobParams, field_label

_SCALARS = (int, float, str)


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the type a flag's value converts to, whether the field is a list)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(options) == 1:
            return _base_type(options[0])
        return str, False  # e.g. int | str: the job reads the text
    if origin in (list, tuple):
        inner = (typing.get_args(tp) or (str,))[0]
        return (inner if inner in _SCALARS else str), True
    return (tp if tp in _SCALARS or tp is bool else str), False


def _help(f: Any) -> str:
    text = str(f.metadata.get("help", ""))
    shown = f.default is not MISSING and f.default is not None and \
        not isinstance(f.default, bool) and f.default != ""
    if shown and "default" not in text:
        text += f" (default {f.default})"
    if f.default is True:  # its flag switches it off
        text = f"switch off (on by default): {text}"
    return text


def add_params_arguments(parser: argparse.ArgumentParser,
                         params: type[JobParams] | type[DeclaredSettings],
                         skip: tuple[str, ...] = ()) -> None:
    """An argument per field of `params` (a job's parameters, or a group of settings such
    as TrainConfig); a true-by-default switch is `--no-NAME` unless the field names its
    flag."""
    hints = typing.get_type_hints(params)
    for f in fields(params):  # type: ignore[arg-type]
        meta = f.metadata
        if not meta.get("cli", True) or f.name in skip:
            continue
        tp, is_list = _base_type(hints[f.name])
        kwargs: dict[str, Any] = {"help": _help(f)}
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if meta.get("choices"):
            kwargs["choices"] = list(meta["choices"])
        if meta.get("positional"):
            if meta.get("nargs") or is_list:
                kwargs["nargs"] = meta.get("nargs") or "+"
            parser.add_argument(f.name, type=tp, **kwargs)
            continue
        flag = meta.get("flag") or f"--{field_label(f.name)}"
        if tp is bool:
            if f.default is True:
                flag = meta.get("flag") or f"--no-{field_label(f.name)}"
                parser.add_argument(flag, dest=f.name, action="store_const", const=False,
                                    default=None, help=kwargs["help"])
            else:
                parser.add_argument(flag, dest=f.name, action="store_const", const=True,
                                    default=None, help=kwargs["help"])
            continue
        if is_list:
            if meta.get("nargs") == "append":
                kwargs["action"] = "append"
            else:
                kwargs["nargs"] = meta.get("nargs") or "+"
        if f.default is MISSING and f.default_factory is MISSING:
            kwargs["required"] = True
        parser.add_argument(flag, dest=f.name, type=tp, default=None, **kwargs)


def given_values(params: type[JobParams] | type[DeclaredSettings],
                 args: argparse.Namespace) -> dict[str, Any]:
    """The fields of `params` given on the command line (a flag not given is left out, so
    the dataclass default, or a resumed run's stored value, holds)."""
    values: dict[str, Any] = {}
    for f in fields(params):  # type: ignore[arg-type]
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = value
    return values


def params_from_args(params: type[JobParams], args: argparse.Namespace,
                     **extra: Any) -> JobParams:
    """The typed parameters from parsed arguments; `extra` sets fields the command computes
    itself (it wins over a flag)."""
    return params(**{**given_values(params, args), **extra})


def resumed_run_id(resume: str | None, project: str,
                   latest: typing.Callable[[Any], int | None]) -> int | None:
    """`--resume last|ID` as a run id: "last" asks `latest(project)` (the newest run that
    can resume), a number is taken as it is, None stays None."""
    from engine.errors import InputError

    if resume is None:
        return None
    if resume == "last":
        from engine.project import Project

        with Project.open(project) as proj:
            return latest(proj)
    try:
        return int(resume)
    except ValueError:
        raise InputError(f"--resume takes a run id, got {resume!r}") from None
