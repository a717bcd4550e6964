"""Training's and extraction's settings are declared once, like every job's parameters: each
field with its help, bounds and choices; the command line's flags are made from them (the
flag names and defaults of before kept), and the settings older runs stored still load."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from engine.cli import build_parser
from engine.cli.arguments import given_values
from engine.errors import InputError
from engine.extract.config import ExtractConfig
from engine.train.config import TrainConfig

FIXTURES = Path(__file__).parent / "data" / "projects"


@pytest.mark.parametrize("config", [TrainConfig, ExtractConfig])
def test_every_setting_declares_its_help_and_every_number_its_bounds(config):
    for f in dataclasses.fields(config):
        assert f.metadata.get("help"), f"{config.__name__}.{f.name} has no help"
        if f.type in ("int", "float", "int | None"):
            assert f.metadata.get("minimum") is not None and \
                f.metadata.get("maximum") is not None, f.name
    assert dataclasses.fields(config)[0].name == "steps"
    precision = next(f for f in dataclasses.fields(config) if f.name == "mixed_precision")
    assert precision.metadata["choices"] == ("auto", "no", "fp16", "bf16")


def test_a_declared_bound_is_the_check_with_the_field_named():
    with pytest.raises(InputError, match="batch_size must be a whole number from 1 to 64"):
        TrainConfig(batch_size=65)
    with pytest.raises(InputError, match=r"learning_rate must be a number in \(0, 1\]"):
        TrainConfig(learning_rate=0.0)
    with pytest.raises(InputError, match="channels_last must be one of auto, on, off"):
        TrainConfig(channels_last="sideways")
    with pytest.raises(InputError, match=r"crf_iterations must be a whole number from 0 to 50"):
        ExtractConfig(crf_iterations=51)
    with pytest.raises(InputError, match=r"Unknown extraction setting\(s\): stepz"):
        ExtractConfig.from_dict({"stepz": 3})


def _config(argv: list[str], config: type) -> dict:
    return given_values(config, build_parser().parse_args(argv))


def test_train_flags_of_before_parse_into_the_settings_they_always_set():
    argv = ["train", "P", "--steps", "7", "--lr", "2e-5", "--batch-size", "1",
            "--accumulation", "3", "--seed", "4", "--resolution", "64",
            "--checkpoint-every", "5", "--sample-every", "0", "--mixed-precision", "no",
            "--prior-preservation", "--masked-loss", "--gradient-checkpointing",
            "--include-test-pictures", "--no-global-token", "--no-repeat-tokens",
            "--no-separate-background"]
    assert _config(argv, TrainConfig) == {
        "steps": 7, "learning_rate": 2e-5, "batch_size": 1, "gradient_accumulation": 3,
        "seed": 4, "resolution": 64, "checkpoint_every": 5, "sample_every": 0,
        "mixed_precision": "no", "prior_preservation": True, "masked_loss": True,
        "gradient_checkpointing": True, "include_test_pictures": True,
        "global_token": False, "repeat_concept_tokens": False, "separate_background": False}
    # no flag: nothing set, so the defaults (or a resumed run's own settings) hold
    assert _config(["train", "P"], TrainConfig) == {}
    # and every setting has a flag now, made from its field
    assert _config(["train", "P", "--weight-decay", "0.5", "--channels-last", "off"],
                   TrainConfig) == {"weight_decay": 0.5, "channels_last": "off"}


def test_extract_flags_of_before_parse_into_the_settings_they_always_set():
    argv = ["extract", "P", "photo.png", "--concepts", "a:cat", "--steps", "9",
            "--iterations", "3", "--seed", "2", "--resolution", "128", "--checkpoint-every",
            "4", "--mixed-precision", "bf16", "--background-token"]
    assert _config(argv, ExtractConfig) == {
        "steps": 9, "iterations": 3, "seed": 2, "resolution": 128, "checkpoint_every": 4,
        "mixed_precision": "bf16", "background_token": True}
    assert ExtractConfig.from_dict(_config(
        ["extract", "P", "--estep-timesteps", "100", "300"], ExtractConfig)
    ).estep_timesteps == (100, 300)


def test_the_flags_help_is_the_fields_help():
    parser = build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices["train"]._actions
                 if "--steps" in a.option_strings)
    assert train.help.startswith(TrainConfig.__dataclass_fields__["steps"].metadata["help"])
    assert train.help.endswith("(default 500)")


@pytest.mark.parametrize("schema", ["schema-5", "schema-6"])
def test_the_settings_older_runs_stored_load_as_they_were(schema):
    state = FIXTURES / schema / "runs" / "1" / "checkpoints" / "step-0000030" / "state.json"
    stored = json.loads(state.read_text(encoding="utf-8"))["config"]
    assert TrainConfig.from_dict(stored).to_dict() == stored
    # an older run without a setting added since takes its default
    older = {k: v for k, v in stored.items() if k not in ("channels_last",
                                                          "include_test_pictures")}
    assert TrainConfig.from_dict(older).channels_last == "auto"
    extraction = ExtractConfig(steps=8, iterations=2).to_dict()
    assert json.loads(json.dumps(extraction)) == extraction
    assert ExtractConfig.from_dict(json.loads(json.dumps(extraction))).to_dict() == extraction
