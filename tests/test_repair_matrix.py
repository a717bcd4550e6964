"""The corruption matrix: a project with scored pictures, its catalogue damaged five ways
(header zeroed, truncated to half, scattered bytes, garbled middle pages, emptied), then
repaired. Every picture whose PNG is intact comes back (from its row or, when the row is
lost, from the recipe its PNG carries), and every read command works afterwards.

The table of rows per table (before the damage, read from the damaged file, kept) is printed:
`pytest -s tests/test_repair_matrix.py` shows it.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from scoring_project import add_run_with_loss, picture  # isort: skip
from dataset_project import make_dataset_project  # isort: skip

from engine.cli import main
from engine.generate.recipe import Recipe
from engine.jobs import JobFinished, run_inline
from engine.masks import png_bytes
from engine.project import Generation, Project
from engine.project.repair import repair_project
from engine.score.jobs import SCORE, ScoreParams

N_PICTURES = 40
TABLES = ("concepts", "photos", "masks", "layouts", "runs", "generations", "scores")


def _recipe(run_id: int, index: int) -> Recipe:
    return Recipe(run_id=run_id, run_kind="custom-diffusion", run_fingerprint="f" * 16,
                  profile="tiny", model={"source": "tiny", "fingerprint": "0" * 16},
                  prompt=f"a photo of <mochi> cat and <cup> mug, take {index}",
                  negative_prompt="blurry", seed=1000 + index, steps=2, guidance=7.5,
                  width=64, height=64, scheduler="pndm", layout=None, precision="float32",
                  device="cpu", app_version="test")


def _counts(catalogue: Path) -> dict[str, int]:
    conn = sqlite3.connect(catalogue)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, tiny_models) -> tuple[Path, dict[str, int]]:
    """The dataset project, a run and N_PICTURES pictures made as the generate stage stores
    them (recipe in the row and in the PNG's text chunk), scored by the score job."""
    folder = make_dataset_project(tmp_path_factory.mktemp("matrix") / "project")
    with Project.open(folder) as project:
        ids = {c.token: c.id for c in project.concepts()}
        run = add_run_with_loss(project)
        assert run.id is not None
        for i in range(N_PICTURES):
            recipe = _recipe(run.id, i)
            boxes = [(ids["<mochi>"], (0.05, 0.3, 0.45, 0.45)),
                     (ids["<cup>"], (0.55, 0.4, 0.35, 0.4))]
            image = picture(project, boxes, seed=i)
            rel = project.put_bytes(png_bytes(image, recipe.png_text()), "png")
            project.add_generation(Generation(
                prompt=recipe.prompt, seed=recipe.seed, run_id=run.id, image_file=rel,
                settings={**recipe.to_dict(), "batch": "matrix", "index": i}))
    end = run_inline(SCORE, ScoreParams(project=str(folder), profile="tiny", device="cpu"))
    assert isinstance(end, JobFinished), end
    counts = _counts(folder / "catalogue.sqlite")
    assert counts["generations"] == N_PICTURES and counts["scores"] > 5 * N_PICTURES
    assert not (folder / "catalogue.sqlite-wal").exists()
    return folder, counts


def _page_size(data: bytes) -> int:
    size = int.from_bytes(data[16:18], "big")
    return 65536 if size == 1 else size


def header_zeroed(data: bytes) -> bytes:
    return bytes(100) + data[100:]


def truncated_to_half(data: bytes) -> bytes:
    return data[:len(data) // 2]


def scattered_bytes(data: bytes) -> bytes:
    rng = np.random.default_rng(23)
    out = bytearray(data)
    for pos in rng.choice(len(data), 200, replace=False):
        out[int(pos)] = int(rng.integers(0, 256))
    return bytes(out)


def garbled_middle_pages(data: bytes) -> bytes:
    size = _page_size(data)
    pages = len(data) // size
    rng = np.random.default_rng(7)
    out = bytearray(data)
    start, end = pages // 3 * size, 2 * pages // 3 * size
    out[start:end] = rng.integers(0, 256, end - start, dtype=np.uint8).tobytes()
    return bytes(out)


def emptied(data: bytes) -> bytes:
    return b""


CASES = (header_zeroed, truncated_to_half, scattered_bytes, garbled_middle_pages, emptied)


@pytest.mark.parametrize("damage", CASES, ids=[c.__name__ for c in CASES])
def test_corruption_matrix(pristine, damage, tmp_path, capsys):
    source, before = pristine
    folder = tmp_path / "project"
    shutil.copytree(source, folder)
    catalogue = folder / "catalogue.sqlite"
    catalogue.write_bytes(damage(catalogue.read_bytes()))

    report = repair_project(folder)

    with capsys.disabled():
        print(f"\n{damage.__name__}: table before/read/kept " + ", ".join(
            f"{t} {before[t]}/{report.rows_read.get(t, 0)}/{report.rows[t]}" for t in TABLES)
            + f"; pictures relisted from files {report.pictures_relisted}")
    assert "Rows per table, read from the damaged file -> kept:" in report.summary()
    with Project.open(folder) as project:
        pictures = project.generations()
        # Every PNG is intact, so every picture comes back (its row, or its file's recipe).
        assert len(pictures) >= 0.95 * N_PICTURES
        for g in pictures:
            recipe = Recipe.from_dict(g.settings, f"generation {g.id}")
            assert g.prompt == recipe.prompt and g.seed == recipe.seed
            assert project.abspath(g.image_file or "").is_file()
        assert len({g.image_file for g in pictures}) == len(pictures)
    # Every read command works on the repaired project.
    assert main(["info", str(folder)]) == 0
    assert main(["gallery", str(folder)]) == 0
    assert main(["report", str(folder), "--out", str(tmp_path / "report.html")]) == 0
    assert main(["score", str(folder), "--profile", "tiny", "--device", "cpu"]) == 0
    assert f"{len(pictures)} picture(s) found" in capsys.readouterr().out
    with Project.open(folder) as project:
        assert len(project.generations_to_score(None, None)) == 0


def test_rows_with_malformed_json_are_dropped_and_listed_again(pristine, tmp_path):
    """A catalogue SQLite reads whole but whose recipes do not parse (scattered bytes in text):
    the gallery and the report work, and repair (no --force needed) drops the bad rows and
    lists their pictures again from their files."""
    source, _before = pristine
    folder = tmp_path / "project"
    shutil.copytree(source, folder)
    conn = sqlite3.connect(folder / "catalogue.sqlite")
    with conn:
        conn.execute("UPDATE generations SET settings_json = '{\"format\": \"mycanvas-r' "
                     "WHERE id <= 5")
    conn.close()
    assert main(["gallery", str(folder)]) == 0

    report = repair_project(folder)

    assert report.damaged and report.invalid_dropped == {"generations": 5}
    assert report.pictures_relisted == 5
    assert "Dropped 5 row(s)" in report.summary()
    with Project.open(folder) as project:
        assert len(project.generations()) == N_PICTURES


def test_dry_run_names_no_missing_file(pristine, tmp_path):
    """Rows that cannot be placed (the scores' interior page garbled while the freelist is
    unknown, its header lost) are counted; a dry run writes no lost-and-found file and its
    summary says so instead of naming one that does not exist."""
    source, _before = pristine
    folder = tmp_path / "project"
    shutil.copytree(source, folder)
    catalogue = folder / "catalogue.sqlite"
    conn = sqlite3.connect(catalogue)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'scores'").fetchone()[0]
    conn.close()
    data = bytearray(catalogue.read_bytes())
    size = _page_size(bytes(data))
    data[(root - 1) * size:root * size] = bytes((i * 37 + 11) % 256 for i in range(size))
    catalogue.write_bytes(header_zeroed(bytes(data)))

    report = repair_project(folder, dry_run=True)

    assert report.lost_rows > 0
    assert "None" not in report.summary()
    assert "a repair would keep them in a lost-and-found file" in report.summary()
    assert "Dry run: nothing was written." in report.summary()


def test_a_forced_repair_of_a_sound_catalogue_keeps_every_row(pristine, tmp_path):
    """Validation drops only what is wrong: every row of a sound project passes it, and every
    picture agrees with the recipe its PNG carries."""
    source, before = pristine
    folder = tmp_path / "project"
    shutil.copytree(source, folder)
    report = repair_project(folder, force=True)
    assert _counts(folder / "catalogue.sqlite") == before
    assert not report.invalid_dropped and not report.orphans_removed
    assert report.pictures_relisted == 0
