"""engine.models.safe_load: weights files load as plain tensors or are refused, never executed."""

from __future__ import annotations

import builtins
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine.errors import InputError, ModelMissingError, MyCanvasError, UnsafeModelError
from engine.models.safe_load import load_state_dict


class _RunsShell:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'echo pwned > "{self.marker}"',))


class _OpensFile:
    """Unpickling this calls open(marker, "w"), which creates the marker on any platform."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


def _legit_state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"layer.weight": torch.randn(3, 4, generator=g), "layer.bias": torch.zeros(3)}


@pytest.mark.parametrize("payload", [_RunsShell, _OpensFile])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, payload):
    marker = tmp_path / "marker.txt"
    evil = tmp_path / "sam_vit_b_01ec64.pth"
    # Real tensors next to the payload: the refusal must not depend on the dict's shape.
    torch.save({**_legit_state(), "extra": payload(marker)}, evil)
    assert not marker.exists()

    with pytest.raises(UnsafeModelError) as err:
        load_state_dict(evil)

    assert "would run code on load" in str(err.value)
    assert evil.name in str(err.value)
    assert not marker.exists()


def test_the_malicious_file_really_is_live(tmp_path):
    # Guards the test above: the payload does run when unpickled freely (here, on purpose).
    marker = tmp_path / "marker.txt"
    evil = tmp_path / "evil.pth"
    torch.save({"x": _OpensFile(marker)}, evil)
    with zipfile.ZipFile(evil) as zf:
        data = zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    pickle.loads(data)  # deliberately unsafe, on our own test file
    assert marker.exists()


def test_legit_torch_save_state_dict_loads(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(_legit_state(), path)
    state = load_state_dict(path)
    assert set(state) == {"layer.weight", "layer.bias"}
    assert torch.equal(state["layer.weight"], _legit_state()["layer.weight"])


@pytest.mark.parametrize("key", ["state_dict", "model"])
def test_nested_state_dict_is_unwrapped(tmp_path, key):
    path = tmp_path / "checkpoint.ckpt"
    torch.save({key: _legit_state(), "epoch": 3, "lr": 1e-5}, path)
    assert set(load_state_dict(path)) == {"layer.weight", "layer.bias"}


def test_non_state_dict_pickle_is_an_input_error(tmp_path):
    path = tmp_path / "numbers.pt"
    torch.save({"epoch": 3, "names": ["a", "b"]}, path)
    with pytest.raises(InputError, match="does not contain a state dict"):
        load_state_dict(path)


def test_safetensors_loads(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file(_legit_state(), str(path))
    state = load_state_dict(path)
    assert torch.equal(state["layer.weight"], _legit_state()["layer.weight"])


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("truncated.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{"),
        ("empty.pth", b""),
    ],
)
def test_corrupt_files_name_the_file(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(MyCanvasError, match=name):
        load_state_dict(path)


def test_truncated_zip_checkpoint_is_an_input_error(tmp_path):
    whole = tmp_path / "whole.pth"
    torch.save(_legit_state(), whole)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(whole.read_bytes()[:200])
    with pytest.raises(InputError, match=r"cut\.pth"):
        load_state_dict(cut)


@pytest.mark.parametrize("name", ["model.onnx", "model.gguf", "model.pkl", "weights"])
def test_unsupported_formats_are_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"whatever")
    with pytest.raises(UnsafeModelError, match="unsupported weights format"):
        load_state_dict(path)


def test_missing_file_is_model_missing(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(ModelMissingError, match=r"nope\.safetensors"):
        load_state_dict(path)
