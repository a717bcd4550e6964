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
