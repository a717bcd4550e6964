"""Observable state: model objects that emit one change signal per field; widgets bind to them.

    class Counter(Evented):
        value = Field(0)          # the class gets a `value_changed` Signal(object)

    unbind = bind(counter, "value", label.setNum)   # called now, and on every change
    ...
    unbind()                      # on teardown

A field emits only when its value really changes (`!=`), so a view that writes back what it
was shown does not loop. No widget is the only holder of a value that matters: the window's
state lives in `AppState`, the canvas's in `LayoutDocument` (layout_editor.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.jobs.declaration import JobDeclaration
from engine.settings import Settings


class Field:
    """A descriptor holding one observable value of an Evented object."""

    def __init__(self, default: Any = None) -> None:
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._values.get(self.name, self.default)

    def __set__(self, obj: Any, value: Any) -> None:
        old = obj._values.get(self.name, self.default)
        obj._values[self.name] = value
        if old is value:
            return
        try:
            same = bool(old == value)
        except Exception:  # values whose == is not a plain bool (arrays) count as changed
            same = False
        if not same:
            getattr(obj, f"{self.name}_changed").emit(value)


class _EventedMeta(type(QObject)):  # type: ignore[misc]
    """Adds a `<field>_changed = Signal(object)` for every Field, before Qt sees the class."""

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any]):
        for key, value in list(namespace.items()):
            if isinstance(value, Field):
                namespace[f"{key}_changed"] = Signal(object)
        return super().__new__(mcls, name, bases, namespace)


class Evented(QObject, metaclass=_EventedMeta):
    def __init__(self, parent: QObject | None = None, **values: Any) -> None:
        super().__init__(parent)
        self._values: dict[str, Any] = {}
        for key, value in values.items():
            if not isinstance(getattr(type(self), key, None), Field):
                raise AttributeError(f"{type(self).__name__} has no field {key!r}")
            setattr(self, key, value)


def _connect(model: Evented, name: str, slot: Callable[[Any], None]) -> Callable[[], None]:
    signal = getattr(model, f"{name}_changed")
    signal.connect(slot)

    def disconnect() -> None:
        with contextlib.suppress(RuntimeError, TypeError):  # already gone with its model
            signal.disconnect(slot)

    return disconnect


def bind(model: Evented, name: str, setter: Callable[[Any], None]) -> Callable[[], None]:
    """Call `setter(value)` now and whenever the field changes; returns the unbind function."""
    unbind = _connect(model, name, setter)
    setter(getattr(model, name))
    return unbind


class Bindings:
    """The bindings of one widget, undone together on teardown."""

    def __init__(self) -> None:
        self._unbinds: list[Callable[[], None]] = []

    def bind(self, model: Evented, name: str, setter: Callable[[Any], None]) -> None:
        self._unbinds.append(bind(model, name, setter))

    def on(self, model: Evented, name: str, slot: Callable[[Any], None]) -> None:
        """Like bind, without the first call: for reactions to a change, not a value to show."""
        self._unbinds.append(_connect(model, name, slot))

    def clear(self) -> None:
        while self._unbinds:
            self._unbinds.pop()()


class AppState(Evented):
    """What the whole window shows. Views read the project through `project` and reload when
    the revision of the part they show changes (a job finished, the user edited something)."""

    settings = Field(None)  # engine.settings.Settings
    project = Field(None)  # engine.project.Project | None, opened in this process
    device = Field("detecting…")
    selected_concept = Field(None)  # concept id or None
    running_job = Field("")  # "Build dataset 40% · 0:32 left", or "" when idle
    concepts_rev = Field(0)
    photos_rev = Field(0)  # photos and masks
    layouts_rev = Field(0)
    dataset_rev = Field(0)
    runs_rev = Field(0)  # training runs (the Train step)
    generations_rev = Field(0)  # generated pictures and their scores (Generate, Gallery)

    def __init__(self, settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent, settings=settings)

    def save_settings(self, settings: Settings) -> str | None:
        """Save `settings` and make them the window's; or the reason they could not be saved
        (nothing changes then)."""
        from engine.errors import MyCanvasError
        from engine.settings import save_settings

        try:
            save_settings(settings)
        except (OSError, MyCanvasError) as exc:
            return f"Could not save the settings: {exc}"
        self.settings = settings
        return None

    def touch(self, *parts: str) -> None:
        """Tell the views showing these parts ("concepts", "photos", ...: the kinds of
        change of JobDeclaration.changes) to reload."""
        for part in parts:
            name = f"{part}_rev"
            setattr(self, name, getattr(self, name) + 1)

    def job_params(self, decl: JobDeclaration, **fields: Any) -> Any:
        """The typed parameters of a job: what the window's settings say (project, profile,
        device, model overrides: only the fields the job declares), then `fields`."""
        settings: Settings = self.settings
        known = {f.name for f in dataclasses.fields(decl.params)}  # type: ignore[arg-type]
        base: dict[str, Any] = {"profile": settings.profile or None, "device": settings.device,
                                "overrides": dict(settings.role_overrides)}
        if self.project is not None:
            base["project"] = str(self.project.root)
        base = {k: v for k, v in base.items() if k in known}
        return decl.params(**{**base, **fields})
