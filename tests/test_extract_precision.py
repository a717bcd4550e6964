"""Extraction computes in the device plan's precision, as training does: bf16 autocast on a
CPU with bf16 units (facts injected: autocast runs on any x86 CPU, just slowly), float32 on
one without, or when the settings hold it to float32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_extract_masks import cutout_scene

import engine.device as device_module
import engine.models.loaders as loaders
from engine.device import CpuFacts
from engine.settings import Settings, save_settings

BF16_CPU = CpuFacts("x86_64", ("avx512_bf16", "amx_bf16"))
PLAIN_CPU = CpuFacts("x86_64", ())


def _photo(folder: Path) -> Path:
    from PIL import Image

    picture, _ = cutout_scene(160)
    path = folder / "pets.png"
    Image.fromarray(picture[20:140]).save(path)
    return path


def _unet_dtypes_of_an_extraction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                  ) -> tuple[set[torch.dtype], list[str], dict]:
    """Run a two-step extraction; the dtypes the UNet's passes computed in, the log and the
    export's manifest."""
    from engine.jobs import JobFinished, JobLog, run_inline
    from engine.project import Project

    Project.create(tmp_path / "project", "Precision").close()
    seen: set[torch.dtype] = set()
    load = loaders.load_text_to_image

    def watched(*args, **kwargs):
        pipe = load(*args, **kwargs)
        pipe.unet.register_forward_hook(lambda _m, _i, out: seen.add(out.sample.dtype))
        return pipe

    monkeypatch.setattr(loaders, "load_text_to_image", watched)
    logs: list[str] = []

    def sink(event) -> None:
        if isinstance(event, JobLog):
            logs.append(event.text)

    concepts = [{"name": "Mochi", "class_word": "horse", "box": [0.0, 20.0, 95.0, 105.0]},
                {"name": "Rex", "class_word": "cup", "box": [88.0, 25.0, 160.0, 100.0]}]
    end = run_inline("extract", {
        "project": str(tmp_path / "project"), "photo": str(_photo(tmp_path)),
        "profile": "tiny", "device": "cpu", "concepts": concepts,
        "config": {"steps": 2, "iterations": 1}, "segment_method": "fallback"}, sink)
    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    from engine.train import read_manifest

    return seen, logs, read_manifest(Path(end.result.export_dir))


@pytest.mark.parametrize(("facts", "setting", "computes_in"), [
    (BF16_CPU, "auto", {torch.bfloat16}),
    (BF16_CPU, "float32", {torch.float32}),
    (PLAIN_CPU, "auto", {torch.float32}),
])
def test_extraction_computes_in_bf16_where_the_cpu_has_it(tiny_models, tmp_path, monkeypatch,
                                                           facts, setting, computes_in):
    monkeypatch.setattr(device_module, "cpu_facts", lambda: facts)
    save_settings(Settings(precision=setting))
    seen, logs, manifest = _unet_dtypes_of_an_extraction(tmp_path, monkeypatch)
    assert seen == computes_in  # M-steps and E-steps alike
    assert manifest["training_precision"] == str(next(iter(computes_in))).removeprefix("torch.")
    said = any(line.startswith("Extraction computes in bfloat16 autocast") for line in logs)
    assert said == (computes_in == {torch.bfloat16})
