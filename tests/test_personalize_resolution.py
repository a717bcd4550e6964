"""Personalize's --resolution: checked where it is given, and part of the training run's key
(another side trains a new run, never resumes one trained at another size)."""

from __future__ import annotations

import pytest

from engine.errors import InputError
from engine.personalize.jobs import PersonalizeParams
from engine.personalize.planning import run_key
from engine.personalize.presets import settings_for


def test_resolution_must_be_a_multiple_of_64():
    with pytest.raises(InputError, match="resolution must be a multiple of 64, got 100"):
        PersonalizeParams(project="p", resolution=100)
    with pytest.raises(InputError, match="resolution"):
        PersonalizeParams(project="p", resolution=32)
    assert PersonalizeParams(project="p", resolution=256).resolution == 256


def test_resolution_is_part_of_the_run_key():
    plain = settings_for(PersonalizeParams(project="p"), "sd15", "cpu")
    small = settings_for(PersonalizeParams(project="p", resolution=256), "sd15", "cpu")
    assert plain.resolution is None and small.resolution == 256
    assert run_key(plain, 0) == f"steps={plain.train_steps} items={plain.items} seed=0"
    assert run_key(small, 0) == run_key(plain, 0) + " resolution=256"
