"""The Train and Extract pages' settings forms are made from the declared fields of
TrainConfig and ExtractConfig: each widget shows the field's help, its bounds and default, and
a value set in the form is the value the job gets."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import QCheckBox, QSpinBox

from desktop_app.state.train_settings import MAIN_SETTINGS
from desktop_app.widgets.params_form import INT_LIMIT
from engine.extract.config import ExtractConfig
from engine.train.config import TrainConfig


def _fields(config: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(config)}


def test_the_train_form_is_made_from_the_training_fields(make_window):
    window = make_window()
    form = window.train_page.form
    fields = _fields(TrainConfig)
    assert list(form.widgets) == MAIN_SETTINGS
    for name, widget in form.widgets.items():
        meta = fields[name].metadata
        assert widget.toolTip() == meta["help"], name
        if isinstance(widget, QSpinBox):
            assert widget.minimum() == meta["minimum"], name
            assert widget.maximum() == min(meta["maximum"], INT_LIMIT), name
        if isinstance(widget, QCheckBox):
            assert widget.isChecked() == fields[name].default, name
    assert form.widgets["batch_size"].maximum() == 64


def test_the_extract_form_is_made_from_the_extraction_fields(make_window):
    window = make_window()
    page = window.extract_page
    fields = _fields(ExtractConfig)
    assert page.steps.toolTip() == fields["steps"].metadata["help"]
    assert page.rounds.toolTip() == fields["iterations"].metadata["help"]
    assert (page.steps.value(), page.rounds.value()) == (400, 4)  # the declared defaults
    assert page.steps.minimum() == 1 and page.rounds.minimum() == 1
    page.steps.setValue(6)
    page.rounds.setValue(9)  # more mask updates than steps: one per step at most
    config = page._config()
    assert config == {"steps": 6, "iterations": 6, "checkpoint_every": 1}
    ExtractConfig.from_dict(config)  # a valid extraction
