"""A small form builder: widgets for chosen fields of a dataclass (a job's parameters, a
training config), each with its plain-language help under it, and the values read back.

    specs = field_specs(GenerateParams, ["steps", "guidance"])   # help from param(help=...)
    form = ParamsForm(specs)
    form.values()          # {"steps": None, "guidance": 7.5}
    form.set_values({"steps": 20})

A field's kind comes from its annotation (int, float, bool, str, or one of them or None), its
help, bounds and choices from its declaration (`param(help=, minimum=, maximum=, choices=)`:
a job's parameters, or TrainConfig's and ExtractConfig's settings).
An optional number (`int | None`) shows its lowest value as "default".
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

INT_LIMIT = 2**31 - 1  # a QSpinBox holds a C int


@dataclass(frozen=True)
class FieldSpec:
    name: str
    label: str
    help: str
    kind: str  # int | float | bool | text | choice
    default: Any
    optional: bool = False  # None allowed: shown as "default"
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = ()
    scientific: bool = False  # a float typed as text (1e-5)
    decimals: int = 2


def _kind(annotation: Any) -> tuple[str, bool]:
    origin = typing.get_origin(annotation)
    optional = False
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(options) < len(typing.get_args(annotation))
        annotation = options[0] if len(options) == 1 else str
    kind = {int: "int", float: "float", bool: "bool"}.get(annotation, "text")
    return kind, optional


def field_specs(cls: type, names: list[str], labels: dict[str, str] | None = None,
                scientific: tuple[str, ...] = ()) -> list[FieldSpec]:
    """Specs of `names` (in that order) of the dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    out = []
    for name in names:
        f = by_name[name]
        kind, optional = _kind(hints[name])
        meta = f.metadata or {}
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        low, high = meta.get("minimum"), meta.get("maximum")
        choices = tuple(meta.get("choices") or ())
        out.append(FieldSpec(
            name=name, label=(labels or {}).get(name, name.replace("_", " ").capitalize()),
            help=str(meta.get("help", "")),
            kind="choice" if choices else kind, default=default, optional=optional,
            minimum=low, maximum=high, choices=choices, scientific=name in scientific))
    return out


class _Scientific(QLineEdit):
    """A float typed as text, so 1e-05 reads as itself."""

    def __init__(self, spec: FieldSpec) -> None:
        super().__init__()
        validator = QDoubleValidator(self)
        validator.setNotation(QDoubleValidator.Notation.ScientificNotation)
        if spec.minimum is not None:
            validator.setBottom(spec.minimum)
        if spec.maximum is not None:
            validator.setTop(spec.maximum)
        self.setValidator(validator)

    def value(self) -> float | None:
        try:
            number = float(self.text())
        except ValueError:
            return None
        return number if math.isfinite(number) else None

    def setValue(self, value: float | None) -> None:
        self.setText("" if value is None else f"{value:g}")


def _make_widget(spec: FieldSpec) -> QWidget:
    if spec.kind == "bool":
        return QCheckBox()
    if spec.kind == "choice":
        combo = QComboBox()
        for choice in spec.choices:
            combo.addItem(str(choice), choice)
        return combo
    if spec.kind == "int":
        box = QSpinBox()
        low = int(spec.minimum) if spec.minimum is not None else 0
        high = int(min(spec.maximum, INT_LIMIT)) if spec.maximum is not None else INT_LIMIT
        if spec.optional:
            low -= 1  # the lowest value stands for None
            box.setSpecialValueText("default")
        box.setRange(low, high)
        return box
    if spec.kind == "float" and spec.scientific:
        return _Scientific(spec)
    if spec.kind == "float":
        box = QDoubleSpinBox()
        box.setDecimals(spec.decimals)
        box.setSingleStep(0.5 if (spec.maximum or 0) > 5 else 0.05)
        box.setRange(spec.minimum if spec.minimum is not None else -1e9,
                     spec.maximum if spec.maximum is not None else 1e9)
        return box
    return QLineEdit()


class ParamsForm(QWidget):
    """Widgets for the given fields; `changed` when the user changes any of them."""

    changed = Signal(str)  # the field's name

    def __init__(self, specs: list[FieldSpec], compact: bool = False) -> None:
        super().__init__()
        self.specs = {s.name: s for s in specs}
        self.widgets: dict[str, QWidget] = {}
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        for spec in specs:
            widget = _make_widget(spec)
            widget.setObjectName(f"field-{spec.name}")
            widget.setToolTip(spec.help)
            self.widgets[spec.name] = widget
            self._set(spec, widget, spec.default)
            self._connect(spec.name, widget)
            if compact or not spec.help:
                form.addRow(spec.label, widget)
                continue
            cell = QWidget()
            column = QVBoxLayout(cell)
            column.setContentsMargins(0, 0, 0, 4)
            column.setSpacing(1)
            column.addWidget(widget)
            note = QLabel(spec.help[:1].upper() + spec.help[1:])
            note.setWordWrap(True)
            note.setStyleSheet("color: gray; font-size: 11px")
            column.addWidget(note)
            form.addRow(spec.label, cell)

    def _connect(self, name: str, widget: QWidget) -> None:
        emit = lambda *_a: self.changed.emit(name)  # noqa: E731
        if isinstance(widget, QCheckBox):
            widget.toggled.connect(emit)
        elif isinstance(widget, QComboBox):
            widget.currentIndexChanged.connect(emit)
        elif isinstance(widget, QSpinBox | QDoubleSpinBox):
            widget.valueChanged.connect(emit)
        elif isinstance(widget, QLineEdit):
            widget.textEdited.connect(emit)

    @staticmethod
    def _set(spec: FieldSpec, widget: QWidget, value: Any) -> None:
        if isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QComboBox):
            widget.setCurrentIndex(max(0, widget.findData(value)))
        elif isinstance(widget, QSpinBox):
            widget.setValue(widget.minimum() if value is None and spec.optional
                            else int(value if value is not None else widget.minimum()))
        elif isinstance(widget, _Scientific):
            widget.setValue(value)
        elif isinstance(widget, QDoubleSpinBox):
            widget.setValue(float(value if value is not None else widget.minimum()))
        elif isinstance(widget, QLineEdit):
            widget.setText("" if value is None else str(value))

    def value(self, name: str) -> Any:
        spec, widget = self.specs[name], self.widgets[name]
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, QComboBox):
            return widget.currentData()
        if isinstance(widget, QSpinBox):
            if spec.optional and widget.value() == widget.minimum():
                return None
            return widget.value()
        if isinstance(widget, _Scientific):
            return widget.value() if widget.value() is not None else spec.default
        if isinstance(widget, QDoubleSpinBox):
            return widget.value()
        assert isinstance(widget, QLineEdit)
        return widget.text()

    def values(self) -> dict[str, Any]:
        return {name: self.value(name) for name in self.specs}

    def set_values(self, values: dict[str, Any]) -> None:
        """Show these values (other fields keep theirs); no `changed` is emitted."""
        for name, value in values.items():
            if name in self.specs:
                widget = self.widgets[name]
                blocked = widget.blockSignals(True)
                self._set(self.specs[name], widget, value)
                widget.blockSignals(blocked)
