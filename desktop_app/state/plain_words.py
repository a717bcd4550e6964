"""Engine messages as a window user should read them.

The engine's reasons are written for both of its faces; some tell a terminal user which command
to run ("Run `mycanvas models download sd15` ..."). In the window the same reason names what to
click instead, and a missing model points at the Models window (download, retry, or choose the
folder that holds it). An error that carries fields (engine.errors.ErrorFields: what is wrong,
the missing role) is told from them; `for_window` rewrites the prose of the errors that do not.
Also the plain-words outcome of an import.
"""

from __future__ import annotations

import re
from typing import Any

from engine.errors import ErrorFields

_DOWNLOAD = re.compile(r"Run `mycanvas models download [^`]*`[^.]*\.")
_COMMAND_IN_PARENS = re.compile(r"\s*\((?:run )?`?(?:mycanvas [^)]*|--[^)]*)\)")
_RUN_COMMAND = re.compile(r":? ?run `mycanvas ([a-z-]+)[^`]*`(?: first)?")
_NOT_DOWNLOADED = re.compile(r"not downloaded: mycanvas models download \S+")
_STEP_OF_COMMAND = {"plan": "plan layouts first (Layouts step)",
                    "segment": "let the app find the objects first (Concepts step)",
                    "build-dataset": "build the dataset first (Dataset step)",
                    "train": "train first (Train step)"}
MODELS_HINT = ("Open Models… (Settings menu) to download it when connected to the internet, "
               "or to choose the folder on this computer that holds it.")


def for_window(reason: str) -> str:
    """`reason` without terminal commands: what to do in the window instead."""
    text = _DOWNLOAD.sub(MODELS_HINT, reason)
    text = _NOT_DOWNLOADED.sub("not downloaded yet", text)
    text = _RUN_COMMAND.sub(lambda m: ": " + _STEP_OF_COMMAND.get(m.group(1), "do that first"),
                            text)
    text = _COMMAND_IN_PARENS.sub("", text)
    return text.replace("Settings → Models", "Models… (Settings menu)")


def failure_text(reason: str, fields: ErrorFields | None = None) -> str:
    """A failure as the window says it: from its fields when it has them (what is wrong, then
    what to click), else the reason rewritten by `for_window`."""
    if fields is None or not fields.problem:
        return for_window(reason)
    if fields.missing_role:
        return f"{fields.problem} {MODELS_HINT}"
    words = fields.command.split()
    step = _STEP_OF_COMMAND.get(words[1]) if len(words) > 1 else None
    hint = step or fields.hint  # the window's step that does what the command does
    hint = hint[:1].upper() + hint[1:]
    return f"{fields.problem} {hint}." if hint else fields.problem


def is_model_missing(reason: str, fields: ErrorFields | None = None) -> bool:
    """Whether a job failed because model weights are not on this computer: its missing role,
    or for an error without fields, its words."""
    if fields is not None and fields.missing_role:
        return True
    return ("is not on this computer" in reason or "mycanvas models download" in reason
            or ("set for the" in reason and "model does not exist" in reason))


def import_outcome(result: Any) -> str:
    """What an import did, in plain words; says why nothing was added (a duplicate)."""
    count, name = len(result.imported), result.name
    parts = [f"{count} photo{'s' * (count != 1)} added to {name}" if count else
             f"No new photo added to {name}"]
    if result.duplicates:
        names = ", ".join(d.get("name", "?") for d in result.duplicates[:3])
        more = "…" if len(result.duplicates) > 3 else ""
        plural = len(result.duplicates) != 1
        parts.append(f"{names}{more} {'were' if plural else 'was'} already in it "
                     f"(the same photo{'s' * plural})")
    if result.failed:
        parts.append(f"{len(result.failed)} refused")
    return "; ".join(parts) + "."
