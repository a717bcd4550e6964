"""Errors a person can read.

Every error the engine raises on purpose derives from MyCanvasError and carries a one-line
reason written for the user of the app; the CLI prints it, the GUI shows it.
"""

from __future__ import annotations


class MyCanvasError(Exception):
    """Base of the engine's deliberate errors: str(err) is a one-line, user-readable reason."""


class InputError(MyCanvasError):
    """A file, field or value given by the user is unusable; the message names it."""


class ProjectError(MyCanvasError):
    """A project folder or catalogue cannot be opened or written as asked."""


class ModelMissingError(MyCanvasError):
    """The weights for a model role are not on this computer and could not be fetched."""


class UnsafeModelError(MyCanvasError):
    """A weights file would run code on load (pickle) or is otherwise refused."""


class Cancelled(Exception):
    """Raised at a step boundary when the user cancelled the job. Not an error."""


def first_line(error: BaseException | str, limit: int = 240) -> str:
    """The first non-empty line of an error's text, at most `limit` characters; an error with
    no text gives its kind. Tracebacks and library detail stay out of what a person reads."""
    text = error if isinstance(error, str) else str(error)
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return "" if isinstance(error, str) else type(error).__name__
