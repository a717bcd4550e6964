"""The gallery's data on the project: schema 5, queries and their filters, favourites and
ratings, score rows, the trash (files and rows together), export with recipes, and
`mycanvas gallery`. No models: scores are written as the score job writes them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import InputError
from engine.project import (
    RECIPE_KEY,
    Generation,
    Project,
    Run,
    Score,
    read_recipe,
)
from engine.project import schema as schema_module
from engine.project.trash import TRASH_DIR

from scoring_project import png  # isort: skip


def _image(seed: int, side: int = 32) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8))


def _add(proj: Project, prompt: str, seed: int, run_id: int | None = None,
         layout: dict | None = None, image: Image.Image | None = None) -> Generation:
    rel = proj.put_bytes(png(image if image is not None else _image(seed)), "png")
    settings = {"format": "mycanvas-recipe", "version": 1, "prompt": prompt, "seed": seed,
                "profile": "tiny", "layout": layout}
    return proj.add_generation(Generation(prompt=prompt, seed=seed, settings=settings,
                                          image_file=rel, run_id=run_id))


def _score(proj: Project, gen: Generation, cp: float | None, ti: float,
           concepts: dict[int, float] | None = None, test_model: bool = True) -> None:
    rows = [Score(generation_id=gen.id, metric="ti-clip", value=ti, model="m",
                  test_model=test_model),
            Score(generation_id=gen.id, metric="cd-text", value=2.5 * max(0, ti), model="m",
                  test_model=test_model)]
    if cp is not None:
        rows.append(Score(generation_id=gen.id, metric="cp-clip", value=cp, model="m",
                          test_model=test_model))
    for cid, value in (concepts or {}).items():
        rows.append(Score(generation_id=gen.id, metric="cp-clip", value=value, concept_id=cid,
                          box=(0.1, 0.2, 0.3, 0.4) if value else None,
                          confidence=0.5 if value else None, model="m", test_model=test_model,
                          details={"threshold": 0.1}))
    proj.replace_scores(gen.id, rows)


@pytest.fixture
def gallery(tmp_path: Path):
    """Run 1 with three pictures (two guided), one picture of no run, one unscored."""
    with Project.create(tmp_path / "g", "Gallery") as proj:
        mochi = proj.add_concept("Mochi", "cat", token="<mochi>")
        cup = proj.add_concept("Cup", "mug", token="<cup>")
        run = proj.add_run(Run(kind="custom-diffusion"))
        layout = {"boxes": [], "strength": 1.0, "guided_fraction": 0.3, "layout_id": None}
        a = _add(proj, "a photo of <mochi> cat and <cup> mug", 1, run.id, layout)
        b = _add(proj, "<mochi> cat in the Snow", 2, run.id, layout)
        c = _add(proj, "<cup> mug on a table", 3, run.id)
        d = _add(proj, "a plain kitchen", 4)
        e = _add(proj, "<mochi> cat, not scored yet", 5, run.id)
        _score(proj, a, 0.8, 0.30, {mochi.id: 0.9, cup.id: 0.7})
        _score(proj, b, 0.4, 0.20, {mochi.id: 0.4})
        _score(proj, c, 0.0, 0.35, {cup.id: 0.0})
        _score(proj, d, None, 0.10, test_model=False)
        with proj._tx() as conn:  # spread the pictures over days
            for gen, day in ((a, "2024-05-01"), (b, "2024-05-02"), (c, "2024-05-03"),
                             (d, "2024-05-04"), (e, "2024-05-05")):
                conn.execute("UPDATE generations SET created_at = ? WHERE id = ?",
                             (f"{day}T12:00:00+00:00", gen.id))
        ids = {"a": a.id, "b": b.id, "c": c.id, "d": d.id, "e": e.id, "run": run.id,
               "mochi": mochi.id, "cup": cup.id}
    yield tmp_path / "g", ids


def _ids(pictures) -> list[int]:
    return [p.id for p in pictures]


# --------------------------------------------------------------------------- schema 5


def test_migration_5_keeps_old_scores_and_adds_the_gallery_columns(tmp_path: Path):
    folder = tmp_path / "old"
    folder.mkdir()
    conn = sqlite3.connect(folder / "catalogue.sqlite")
    schema_module.apply_migrations(conn, 0, 4)
    conn.executescript("""
        INSERT INTO meta (key, value) VALUES ('name', 'Old');
        INSERT INTO concepts (id, name, token, class_word) VALUES (1, 'Mochi', '<mochi>', 'cat');
        INSERT INTO generations (id, prompt, settings_json) VALUES (7, '<mochi> cat', '{}');
        INSERT INTO scores (id, generation_id, metric, concept_id, value)
            VALUES (3, 7, 'cp-clip', 1, 0.5), (4, 7, 'ti-clip', NULL, 0.25);
    """)
    conn.commit()
    conn.close()
    with Project.open(folder) as proj:
        assert proj.schema_version >= 5
        gen = proj.generation(7)
        assert (gen.favourite, gen.rating, gen.deleted_at) == (False, None, None)
        old = {s.id: s for s in proj.scores(7)}
        assert (old[3].metric, old[3].concept_id, old[3].value) == ("cp-clip", 1, 0.5)
        assert old[4].model == "" and not old[4].test_model and old[4].box is None
        proj.add_score(7, "cd-text", 0.6)  # the new metrics are accepted
        with pytest.raises(InputError, match="cd-text"):
            Score(generation_id=7, metric="cd-text", value=1.0, concept_id=1)
    assert (folder / "catalogue.v4.bak").is_file()


def test_the_catalogue_refuses_bad_marks(gallery):
    folder, ids = gallery
    with Project.open(folder) as proj, proj._tx() as conn:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE generations SET rating = 6 WHERE id = ?", (ids["a"],))
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO scores (generation_id, metric, value) "
                         "VALUES (?, 'fid', 1)", (ids["a"],))


# --------------------------------------------------------------------------- queries


def test_filters(gallery):
    folder, ids = gallery
    with Project.open(folder) as p:
        assert _ids(p.gallery()) == [ids[k] for k in "edcba"]  # newest first
        assert sorted(_ids(p.gallery(run_id=ids["run"]))) == sorted(ids[k] for k in "abce")
        assert sorted(_ids(p.gallery(concept_id=ids["mochi"]))) == sorted(ids[k] for k in "abe")
        assert _ids(p.gallery(text="SNOW")) == [ids["b"]]
        assert _ids(p.gallery(min_cp=0.4, sort="oldest")) == [ids["a"], ids["b"]]
        assert _ids(p.gallery(max_cp=0.1)) == [ids["c"]]
        assert _ids(p.gallery(min_ti=0.3, max_ti=0.32)) == [ids["a"]]
        assert _ids(p.gallery(since="2024-05-03", until="2024-05-04")) == [ids["d"], ids["c"]]
        assert _ids(p.gallery(until="2024-05-01T12:00:00Z")) == [ids["a"]]
        assert _ids(p.gallery(since="2024-05-05T14:00:00+02:00")) == [ids["e"]]
        assert sorted(_ids(p.gallery(guided=True))) == sorted([ids["a"], ids["b"]])
        assert ids["a"] not in _ids(p.gallery(guided=False))
        assert _ids(p.gallery(scored=False)) == [ids["e"]]
        assert p.gallery_count(scored=True) == 4
        assert _ids(p.gallery(run_id=ids["run"], min_cp=0.3, guided=True, text="photo")) == \
            [ids["a"]]
        for bad, message in (({"min_cp": "high"}, "min_cp"), ({"since": "May"}, "since"),
                             ({"sort": "random"}, "sort"), ({"trash": "bin"}, "trash"),
                             ({"min_rating": 9}, "rating"), ({"limit": 0}, "limit")):
            with pytest.raises(InputError, match=message):
                p.gallery(**bad)
        with pytest.raises(InputError, match="No concept with id 99"):
            p.gallery(concept_id=99)


def test_sorting_paging_and_what_a_picture_carries(gallery):
    folder, ids = gallery
    with Project.open(folder) as p:
        assert _ids(p.gallery(sort="cp-clip")) == [ids[k] for k in "abcde"[:3]] + \
            [ids["e"], ids["d"]]
        assert _ids(p.gallery(sort="ti-clip"))[:2] == [ids["c"], ids["a"]]
        page = p.gallery(sort="oldest", limit=2, offset=1)
        assert _ids(page) == [ids["b"], ids["c"]]
        a = p.gallery_image(ids["a"])
        assert a.guided and a.scored and a.test_model and a.model == "m"
        assert a.cp_clip == 0.8 and a.ti_clip == 0.3 and a.cd_text == pytest.approx(0.75)
        assert [(c.token, c.cp_clip, c.detected) for c in a.concepts] == [
            ("<mochi>", 0.9, True), ("<cup>", 0.7, True)]
        c = p.gallery_image(ids["c"])
        assert [(c.token, c.cp_clip, c.detected, c.box) for c in c.concepts] == [
            ("<cup>", 0.0, False, None)]
        e = p.gallery_image(ids["e"])
        assert not e.scored and [(x.token, x.cp_clip) for x in e.concepts] == [("<mochi>", None)]
        assert e.path is not None and e.path.is_file()
        data = a.to_dict()
        assert data["scores"]["concepts"][0]["box"] == [0.1, 0.2, 0.3, 0.4]
        assert data["scores"]["test_model"] is True and data["guided"] is True
        json.dumps(data)


def test_favourites_and_ratings(gallery):
    folder, ids = gallery
    with Project.open(folder) as p:
        assert p.set_favourite([ids["a"], ids["c"]]) == 2
        assert p.set_rating(ids["c"], 5) == 1
        p.set_rating(ids["a"], 3)
        assert sorted(_ids(p.gallery(favourites=True))) == sorted([ids["a"], ids["c"]])
        assert _ids(p.gallery(min_rating=4)) == [ids["c"]]
        assert _ids(p.gallery(sort="rating"))[:2] == [ids["c"], ids["a"]]
        p.set_favourite(ids["a"], False)
        p.set_rating(ids["a"], None)
        assert (p.generation(ids["a"]).favourite, p.generation(ids["a"]).rating) == (False, None)
        with pytest.raises(InputError, match="1 to 5"):
            p.set_rating(ids["b"], 0)
        with pytest.raises(InputError, match="No generation with id 999"):
            p.set_favourite([ids["b"], 999])
        assert not p.generation(ids["b"]).favourite  # all or nothing


def test_replace_scores_is_all_or_nothing(gallery):
    folder, ids = gallery
    with Project.open(folder) as p:
        before = p.scores(ids["a"])
        bad = [Score(generation_id=ids["a"], metric="ti-clip", value=0.5),
               Score(generation_id=ids["a"], metric="cp-clip", value=0.5, concept_id=99)]
        with pytest.raises(InputError, match="concept 99"):
            p.replace_scores(ids["a"], bad)
        with pytest.raises(InputError, match="cannot be stored for generation"):
            p.replace_scores(ids["b"], bad[:1])
        with pytest.raises(InputError, match=r"Score\.box"):
            Score(generation_id=1, metric="cp-clip", value=0.1, concept_id=1,
                  box=(0.8, 0.1, 0.5, 0.1))
        assert p.scores(ids["a"]) == before


# --------------------------------------------------------------------------- the trash


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for sub in ("files", TRASH_DIR)
            for p in (folder / sub).rglob("*") if p.is_file()}


def test_trash_restore_and_empty_move_files_and_rows_together(gallery):
    folder, ids = gallery
    with Project.open(folder) as p:
        original = p.generation(ids["a"]).image_file
        assert p.trash_generations([ids["a"], ids["b"]]) == 2
        a = p.generation(ids["a"])
        assert a.trashed and a.image_file == f"{TRASH_DIR}/{original}"
        assert p.abspath(a.image_file).is_file() and not p.abspath(original).exists()
        assert ids["a"] not in _ids(p.gallery())
        assert sorted(_ids(p.gallery(trash="trash"))) == sorted([ids["a"], ids["b"]])
        assert len(p.gallery(trash="all")) == 5 and p.trash_count() == 2
        assert p.trash_generations(ids["a"]) == 0  # already there
        assert p.restore_generations(ids["a"]) == 1
        back = p.generation(ids["a"])
        assert not back.trashed and back.image_file == original
        assert p.abspath(original).is_file() and not (folder / TRASH_DIR / original).exists()
        assert p.gallery_image(ids["a"]).cp_clip == 0.8  # scores came back with it
        b_file = p.generation(ids["b"]).image_file
        assert p.empty_trash() == 1
        with pytest.raises(InputError, match="No generation"):
            p.generation(ids["b"])
        assert p.scores(ids["b"]) == []
        assert not p.abspath(b_file).exists()
        assert not (folder / TRASH_DIR).exists() or not any((folder / TRASH_DIR).rglob("*"))
        with pytest.raises(InputError, match="No generation with id 999"):
            p.trash_generations([ids["c"], 999])
        assert not p.generation(ids["c"]).trashed


def test_a_file_shared_by_two_pictures_stays_for_the_other(gallery):
    folder = gallery[0]
    with Project.open(folder) as p:
        same = _image(77)
        first = _add(p, "twin one", 50, image=same)
        second = _add(p, "twin two", 51, image=same)
        shared = first.image_file
        assert second.image_file == shared
        p.trash_generations(first.id)
        assert p.abspath(shared).is_file()  # the other picture still shows it
        assert p.abspath(p.generation(first.id).image_file).is_file()
        p.trash_generations(second.id)
        assert not p.abspath(shared).exists()
        p.restore_generations(first.id)
        assert p.abspath(shared).is_file()
        assert p.abspath(p.generation(second.id).image_file).is_file()  # still in the trash
        p.empty_trash()
        assert p.abspath(shared).is_file() and p.generation(first.id).image_file == shared
        assert not any(path.is_file() for path in (folder / TRASH_DIR).rglob("*"))


def test_a_picture_whose_file_is_gone_can_still_be_trashed(gallery):
    folder, ids = gallery
    with Project.open(folder) as p:
        rel = p.generation(ids["d"]).image_file
        p.abspath(rel).unlink()
        assert p.trash_generations(ids["d"]) == 1
        assert p.generation(ids["d"]).image_file == rel  # nothing to move
        assert p.restore_generations(ids["d"]) == 1
        p.trash_generations(ids["d"])
        assert p.empty_trash() == 1


# --------------------------------------------------------------------------- export


def test_export_writes_png_with_its_recipe_and_json(gallery, tmp_path):
    folder, ids = gallery
    out = tmp_path / "export"
    with Project.open(folder) as p:
        p.set_favourite(ids["a"])
        done = p.export_generations([ids["a"], ids["d"]], out)
        source = p.abspath(p.generation(ids["a"]).image_file)
    assert [d.generation_id for d in done] == [ids["a"], ids["d"]]
    first = done[0]
    assert first.png.name.startswith(f"{ids['a']:06d}-a-photo-of-mochi-cat")
    recipe = read_recipe(first.png)
    assert recipe == json.loads(first.recipe.read_text(encoding="utf-8"))
    assert recipe["format"] == "mycanvas-recipe" and recipe["seed"] == 1
    assert recipe["prompt"] == "a photo of <mochi> cat and <cup> mug"
    assert recipe["gallery"]["favourite"] is True and recipe["gallery"]["guided"] is True
    assert recipe["gallery"]["scores"]["cp_clip"] == 0.8
    assert recipe["gallery"]["test_model"] is True
    assert read_recipe(done[1].png)["gallery"]["test_model"] is False
    with Image.open(first.png) as exported, Image.open(source) as original:
        assert np.array_equal(np.asarray(exported), np.asarray(original))
        assert RECIPE_KEY in exported.text
    # Exported again: the same files, rewritten.
    with Project.open(folder) as p:
        p.export_generations(ids["a"], out)
    assert sorted(x.name for x in out.iterdir()) == sorted(
        [d.png.name for d in done] + [d.recipe.name for d in done])


def test_the_exported_recipe_is_the_generate_stages_chunk():
    generate_recipe = pytest.importorskip("engine.generate.recipe")
    assert RECIPE_KEY == generate_recipe.PNG_RECIPE_KEY


def test_export_checks_every_picture_first(gallery, tmp_path):
    folder, ids = gallery
    with Project.open(folder) as p:
        p.abspath(p.generation(ids["d"]).image_file).unlink()
        with pytest.raises(InputError, match=f"Picture {ids['d']} has no image file"):
            p.export_generations([ids["a"], ids["d"]], tmp_path / "out")
        with pytest.raises(InputError, match="at least one"):
            p.export_generations([], tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the CLI


def test_cli_gallery_lists_with_filters_and_json(gallery, capsys):
    from engine.cli import main

    folder, ids = gallery
    assert main(["gallery", str(folder), "--concept", "Mochi", "--min-cp", "0.3", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [x["id"] for x in listed] == [ids["b"], ids["a"]]
    assert all(x["scores"]["test_model"] for x in listed)
    assert main(["gallery", str(folder), "--concept", "<cup>", "--sort", "oldest"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].startswith(f"#{ids['a']}") and "[test model]" in text
    assert "2 picture(s) found." in text and "say nothing about the pictures" in text
    with Project.open(folder) as p:
        p.trash_generations(ids["c"])
    assert main(["gallery", str(folder), "--trash", "--json"]) == 0
    assert [x["id"] for x in json.loads(capsys.readouterr().out)] == [ids["c"]]
    assert main(["gallery", str(folder), "--unscored"]) == 0
    assert "#" + str(ids["e"]) in capsys.readouterr().out
    assert main(["gallery", str(folder), "--concept", "Nobody"]) == 1
    assert "No concept 'Nobody'" in capsys.readouterr().err


def test_the_gallery_state_changes_with_everything_a_view_shows(gallery):
    """What the window's watcher compares: marks, trash and rescoring change it even when the
    number of pictures and of scores stays the same."""
    folder, ids = gallery
    with Project.open(folder) as proj:
        seen = [proj.gallery_state()]
        assert proj.gallery_state() == seen[0]  # reading changes nothing

        def changed() -> bool:  # since the last look
            now = proj.gallery_state()
            new = now != seen[-1]
            seen.append(now)
            return new

        proj.set_favourite(ids["a"])
        assert changed()
        proj.set_favourite(ids["a"], False)
        proj.set_favourite(ids["b"])  # as many favourites as before, another picture
        assert changed() and seen[-1] != seen[1]
        proj.set_rating(ids["c"], 4)
        assert changed()
        proj.trash_generations(ids["d"])
        assert changed()
        proj.restore_generations(ids["d"])
        assert changed()
        before = proj.summary()["scores"]
        gen = proj.gallery_image(ids["b"]).generation
        _score(proj, gen, 0.5, 0.25, {ids["mochi"]: 0.5})  # a rescore: same number of rows
        assert proj.summary()["scores"] == before and changed()
