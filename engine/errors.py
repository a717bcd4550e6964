"""Errors a person can read.

Every error the engine raises on purpose derives from MyCanvasError and carries a one-line
reason written for the user of the app; the CLI prints it, the GUI shows it. What a front end
acts on travels beside the prose as fields (`ErrorFields`: what to do, the command that does it
in a terminal, the model role that is missing), so the window reads them instead of parsing the
message; a failed job carries them in its JobFailed event.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorFields:
    """What an error says beside its message, for a front end to act on.

    problem: what is wrong, the message without its remedy; hint: what to do, in words that
    fit any front end ("download it when connected to the internet, or choose the folder that
    holds it"); command: the terminal command that does it ("mycanvas models download sd15");
    missing_role: the model role whose weights are not on this computer ("unet"); cause: why
    it happened, when known ("no connection to the Hugging Face Hub"). An empty field: the
    error says nothing of that kind."""

    hint: str = ""
    command: str = ""
    missing_role: str = ""
    problem: str = ""
    cause: str = ""


class MyCanvasError(Exception):
    """Base of the engine's deliberate errors: str(err) is a one-line, user-readable reason;
    `fields` what a front end acts on (ErrorFields)."""

    def __init__(self, *args: object, hint: str = "", command: str = "",
                 missing_role: str = "", problem: str = "", cause: str = "") -> None:
        super().__init__(*args)
        self.fields = ErrorFields(hint, command, missing_role, problem, cause)

    def __reduce__(self):  # keep the fields across pickling (a worker process's error)
        return (_rebuild, (type(self), self.args, self.fields))


def _rebuild(kind: type[MyCanvasError], args: tuple, fields: ErrorFields) -> MyCanvasError:
    error = kind(*args)
    error.fields = fields
    return error


class InputError(MyCanvasError):
    """A file, field or value given by the user is unusable; the message names it."""


class ProjectError(MyCanvasError):
    """A project folder or catalogue cannot be opened or written as asked."""


class ModelMissingError(MyCanvasError):
    """The weights for a model role are not on this computer and could not be fetched.
    `fields.missing_role` names the role when it is one of a profile's."""


class UnsafeModelError(MyCanvasError):
    """A weights file would run code on load (pickle) or is otherwise refused."""


class DiskFullError(MyCanvasError):
    """The disk ran out of space while writing; the message names the file, the space needed
    and what was kept."""


class Cancelled(Exception):
    """Raised at a step boundary when the user cancelled the job. Not an error."""


# Library messages that advise switching a safety check off ("re-run torch.load with
# weights_only=False", "pass trust_remote_code=True"): following them could run a stranger's
# code, so no such text is ever passed on to a person.
_UNSAFE_ADVICE = ("weights_only", "trust_remote_code", "allow_pickle", "unsafe_load",
                  "safe_mode=false")  # compared without spaces, lowercase
REFUSED_BY_SAFETY_CHECK = ("refused by the safe loader: the file holds code or objects, not "
                           "only data, and loading it could run that code")


def has_unsafe_advice(text: str) -> bool:
    """Whether `text` mentions switching a safety check off (see _UNSAFE_ADVICE)."""
    squashed = text.lower().replace(" ", "")
    return any(word in squashed for word in _UNSAFE_ADVICE)


def first_line(error: BaseException | str, limit: int = 240) -> str:
    """The first non-empty line of an error's text, at most `limit` characters; an error with
    no text gives its kind. Tracebacks and library detail stay out of what a person reads, and
    so does any library advice to disable a safety check (REFUSED_BY_SAFETY_CHECK instead)."""
    text = error if isinstance(error, str) else str(error)
    if has_unsafe_advice(text):
        return REFUSED_BY_SAFETY_CHECK[:limit]
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return "" if isinstance(error, str) else type(error).__name__


@contextlib.contextmanager
def reading(path: str | os.PathLike[str], what: str, remedy: str) -> Iterator[None]:
    """Reading a file we wrote ourselves (a checkpoint, a cache, an export): whatever goes
    wrong becomes one InputError that names the file, says why in a line and what to do
    (`remedy`). A file that torch's safe unpickler refused is said to be refused, never with
    the library's advice to load it unsafely."""
    try:
        yield
    except MyCanvasError:
        raise
    except MemoryError:
        raise
    except Exception as exc:
        text = str(exc)
        if has_unsafe_advice(text) or "weights only load failed" in text.lower():
            why = ("it holds objects other than tensors and was refused, as loading it could "
                   "run code; it was not written by MyCanvas Studio as it is now")
        elif isinstance(exc, FileNotFoundError):
            why = "it is missing"
        else:
            why = f"it is damaged or not {what} ({first_line(exc, 120)})"
        raise InputError(f"{os.fspath(path)}: {why}. {remedy}") from exc
