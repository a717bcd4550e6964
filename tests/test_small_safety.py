"""Smaller edges: what the commands print cannot drive the terminal (ANSI escapes in prompts
and names are shown as escapes), the NaN message gives advice that fits the device, and
`extract --resume` checks the photo path it is given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.device import DevicePlan
from engine.errors import MyCanvasError
from engine.project import Generation, Project
from engine.text import printable

RED, CLEAR = "\x1b[31m", "\x1b[2J"


def test_printable_shows_what_a_terminal_would_act_on():
    assert printable(f"{RED}cat\u202emug\x07") == "\\x1b[31mcat\\u202emug\\x07"
    assert printable("a\nb\tc\r") == "a\\x0ab\\x09c\\x0d"
    assert printable("a\nb\r", keep_lines=True) == "a\nb\r"
    assert printable("ünïcödé 猫 <mochi>") == "ünïcödé 猫 <mochi>"


def test_gallery_prints_escapes_not_control_characters(tmp_path, capsys):
    """Names are refused with control characters where they are stored; prompts are not."""
    with Project.create(tmp_path / "p", "prompts") as project:
        project.add_generation(Generation(prompt=f"a {RED}red\r<mochi> cat{CLEAR}", seed=1))
    assert main(["gallery", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    assert "a \\x1b[31mred\\x0d<mochi> cat\\x1b[2J" in out


def test_an_error_message_with_control_characters_is_printed_escaped(tmp_path, capsys):
    assert main(["info", str(tmp_path / f"no{CLEAR}where")]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "no\\x1b[2Jwhere" in err


@pytest.mark.parametrize("module", ["engine.generate.sampler", "engine.dataset.inpaint"])
def test_nan_advice_fits_the_device(module):
    import importlib

    to_uint8 = importlib.import_module(module)._to_uint8
    nan = [np.full((8, 8, 3), np.nan, np.float32)]
    on_cpu = DevicePlan("cpu", "float32", None, False, False, False)
    with pytest.raises(MyCanvasError) as caught:
        to_uint8(nan, on_cpu)
    assert "NaN" in str(caught.value) and "--device cpu" not in str(caught.value)
    assert "weights" in str(caught.value)
    on_gpu = DevicePlan("cuda", "float16", None, False, False, False)
    with pytest.raises(MyCanvasError, match="try --device cpu"):
        to_uint8(nan, on_gpu)


def test_extract_resume_checks_the_photo_path(tmp_path, capsys):
    Project.create(tmp_path / "p", "extract").close()
    missing = tmp_path / "no-such-photo.jpg"
    assert main(["extract", str(tmp_path / "p"), str(missing), "--resume"]) == 1
    err = capsys.readouterr().err
    assert f"Photo not found: {missing}" in err
    assert not Path(missing).exists()
