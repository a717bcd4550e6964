"""Hostile recipes are refused before anything is stored or loaded: a huge prompt, deeply
nested JSON, a zTXt bomb, a PNG that claims 20000×20000 pixels; each with one line that names
the file and the field. Scoring and the report skip (and name) a picture they cannot read."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from scoring_project import make_scoring_project  # isort: skip

from engine.cli import main
from engine.errors import InputError
from engine.generate.jobs import GenerateParams
from engine.generate.recipe import MAX_PROMPT_CHARS, Recipe, read_recipe_file
from engine.image_files import open_picture, png_text
from engine.jobs import JobFinished, run_inline
from engine.project import Generation, Project
from engine.score.jobs import SCORE, ScoreParams


def _recipe(**changes) -> dict:
    recipe = Recipe(run_id=1, run_kind="custom-diffusion", run_fingerprint="f", profile="tiny",
                    model={"source": "tiny"}, prompt="a photo of <mochi> cat", seed=1,
                    negative_prompt="", steps=2, guidance=7.5, width=64, height=64,
                    scheduler="pndm", layout=None, precision="float32", device="cpu",
                    app_version="test").to_dict()
    recipe.update(changes)
    return recipe


def _png_with_text(path: Path, chunks: dict[str, str], compressed: bool = False) -> Path:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value, zip=compressed)
    Image.new("RGB", (64, 64), (10, 200, 30)).save(path, pnginfo=info)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _ztxt_bomb(path: Path, key: str = "mycanvas_recipe", expands_to: int = 64 << 20) -> Path:
    """A 64x64 PNG whose zTXt chunk is ~64 kB that expands to 64 MB."""
    image = _png_with_text(path, {})
    data = image.read_bytes()
    bomb = _chunk(b"zTXt", key.encode() + b"\0\0" + zlib.compress(b" " * expands_to, 9))
    path.write_bytes(data[:33] + bomb + data[33:])  # after the signature and IHDR
    return path


def _huge_png(path: Path, side: int = 20000) -> Path:
    """A PNG whose header claims side×side pixels (its pixel data is a stub)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                     + _chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + _chunk(b"IEND", b""))
    return path


@pytest.fixture
def project(tmp_path) -> Path:
    Project.create(tmp_path / "p", "hostile").close()
    return tmp_path / "p"


def _refused(capsys, project: Path, recipe: Path) -> str:
    assert main(["generate", str(project), "--recipe", str(recipe)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Unexpected" not in err
    with Project.open(project) as proj:
        assert proj.generations() == [] and proj.runs() == []
    return err


def test_a_huge_recipe_chunk_is_refused_by_its_size(project, tmp_path, capsys):
    png = _png_with_text(tmp_path / "big.png",
                         {"mycanvas_recipe": json.dumps(_recipe(negative_prompt="x" * (2 << 20)))})
    err = _refused(capsys, project, png)
    assert str(png) in err and "'mycanvas_recipe'" in err and "2.1 MB" in err


def test_a_long_negative_prompt_is_refused_naming_the_field(project, tmp_path, capsys):
    png = _png_with_text(tmp_path / "long.png",
                         {"mycanvas_recipe": json.dumps(_recipe(negative_prompt="x" * 5000))})
    err = _refused(capsys, project, png)
    assert str(png) in err and "negative_prompt is 5,000 characters long" in err
    recipe = tmp_path / "long.json"
    recipe.write_text(json.dumps(_recipe(prompt="y" * (MAX_PROMPT_CHARS + 1))))
    assert "prompt is 2,001 characters long" in _refused(capsys, project, recipe)


def test_deeply_nested_json_is_refused_before_parsing(project, tmp_path, capsys):
    recipe = tmp_path / "nested.json"
    recipe.write_text('{"layout": ' + "[" * 10_000 + "]" * 10_000 + "}")
    err = _refused(capsys, project, recipe)
    assert str(recipe) in err and "nests more than" in err


def test_a_ztxt_bomb_is_refused(project, tmp_path, capsys):
    png = _ztxt_bomb(tmp_path / "bomb.png")
    err = _refused(capsys, project, png)
    assert str(png) in err and "text chunk 'mycanvas_recipe' expands past 1.0 MB" in err


def test_a_20000_pixel_png_is_refused_from_its_header(project, tmp_path, capsys):
    png = _huge_png(tmp_path / "huge.png")
    err = _refused(capsys, project, png)
    assert str(png) in err and "20000×20000" in err


def test_request_text_fields_are_limited_before_anything_runs():
    with pytest.raises(InputError, match="negative is 2,001 characters"):
        GenerateParams(project="p", prompt="a <mochi> cat", negative="n" * 2001)
    with pytest.raises(InputError, match="scheduler is 300 characters"):
        Recipe.from_dict(_recipe(scheduler="s" * 300))
    with pytest.raises(InputError, match="layout has 65 boxes"):
        Recipe.from_dict(_recipe(layout={"boxes": [{"token": "<a>", "x": 0, "y": 0, "w": 0.1,
                                                    "h": 0.1}] * 65, "strength": 1,
                                         "guided_fraction": 0.3}))


def test_an_unknown_scheduler_is_refused_before_the_model_loads(project, tmp_path):
    """The recipe names a run that does not exist either: the scheduler is checked first,
    the way every field of a recipe is, before the run or the model is looked at."""
    recipe = tmp_path / "sched.json"
    recipe.write_text(json.dumps(_recipe(scheduler="warp-drive")))
    with pytest.raises(InputError, match="unknown scheduler 'warp-drive'"):
        from engine.generate.generate_job import plan_request

        with Project.open(project) as proj:
            plan_request(proj, GenerateParams(project=str(project),
                                              recipe=read_recipe_file(recipe).to_dict()))


def test_the_safe_readers_name_the_file(tmp_path):
    assert png_text(_png_with_text(tmp_path / "ok.png", {"k": "v"})) == {"k": "v"}
    for bad, words in ((_ztxt_bomb(tmp_path / "b.png", key="k"), "expands past"),
                       (_huge_png(tmp_path / "h.png"), "20000×20000")):
        with pytest.raises(InputError, match=words) as caught:
            open_picture(bad)
        assert str(bad) in str(caught.value)


def test_score_and_report_skip_a_picture_they_cannot_read(tmp_path, tiny_models):
    folder = make_scoring_project(tmp_path / "project")
    with Project.open(folder) as proj:
        bomb = _ztxt_bomb(tmp_path / "bomb.png", key="parameters")
        rel = proj.put_bytes(bomb.read_bytes(), "png")
        bad = proj.add_generation(Generation(prompt="a photo of <mochi> cat", image_file=rel,
                                             settings={"prompt": "a photo of <mochi> cat"}))
    end = run_inline(SCORE, ScoreParams(project=str(folder), profile="tiny", device="cpu"))
    assert isinstance(end, JobFinished), end
    assert end.result.scored == 4 and end.result.remaining == 1
    assert len(end.result.failures) == 1
    assert f"picture {bad.id}" in end.result.failures[0] and rel in end.result.failures[0]
    assert main(["report", str(folder), "--out", str(tmp_path / "r.html")]) == 0
