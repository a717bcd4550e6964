"""The project store: catalogue, migrations, content-addressed files, refusal of bad input."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from engine.errors import InputError, ProjectError
from engine.paths import resolve_inside
from engine.project import (
    CURRENT_VERSION,
    DatasetItem,
    Generation,
    Layout,
    LayoutObject,
    Project,
    Run,
    Score,
    concept_dir_name,
)
from engine.project import files as files_module
from engine.project import schema as schema_module

FIXTURE_V1 = Path(__file__).parent / "data" / "catalogue_v1.sql"
SHA_A = "a" * 64


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sidecars(catalogue: Path) -> list[Path]:
    return [p for p in catalogue.parent.iterdir() if p.name.startswith(catalogue.name + "-")]


@pytest.fixture
def project(tmp_path: Path):
    with Project.create(tmp_path / "proj", "Test project") as proj:
        yield proj


def build_v1(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    catalogue = folder / "catalogue.sqlite"
    conn = sqlite3.connect(catalogue)
    conn.executescript(FIXTURE_V1.read_text(encoding="utf-8"))
    conn.close()
    return catalogue


def dump(catalogue: Path) -> list[str]:
    conn = sqlite3.connect(catalogue)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        return [*conn.iterdump(), f"user_version={version}"]
    finally:
        conn.close()


def table_shapes(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    shapes = {t: [tuple(r) for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
    shapes["<indexes>"] = sorted(
        r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'"))
    return shapes


# --------------------------------------------------------------------------- create / open


def test_create_makes_folder_catalogue_and_meta(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "proj"
    with Project.create(folder, "  My pets  ") as project:
        assert project.meta("name") == "My pets"
        assert project.meta("app_version")
        assert project.meta("created_at")
        assert project.schema_version == CURRENT_VERSION
        summary = project.summary()
        assert summary["name"] == "My pets" and summary["schema_version"] == CURRENT_VERSION
        assert summary["concepts"] == 0 and summary["scores"] == 0
        mode = project._live().execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
        assert project._live().execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert (folder / "files").is_dir() and (folder / "runs").is_dir()
    assert (folder / "catalogue.sqlite").is_file()
    assert sidecars(folder / "catalogue.sqlite") == []


def test_create_refuses_existing_project_or_nonempty_folder(tmp_path: Path) -> None:
    Project.create(tmp_path / "p", "p").close()
    with pytest.raises(ProjectError, match="already holds a MyCanvas project"):
        Project.create(tmp_path / "p", "again")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ProjectError, match="not empty"):
        Project.create(tmp_path / "busy", "p")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    Project.create(tmp_path / "empty", "ok").close()
    with pytest.raises(InputError, match="Project name"):
        Project.create(tmp_path / "blank", "   ")


def test_open_refuses_missing_folder_or_catalogue(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="does not exist"):
        Project.open(tmp_path / "nope")
    with pytest.raises(ProjectError, match=r"is not a MyCanvas project \(no catalogue.sqlite\)"):
        Project.open(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_closed_project_refuses_use(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "p", "p")
    project.close()
    project.close()  # twice is fine
    with pytest.raises(ProjectError, match="is closed"):
        project.concepts()


def test_round_trip_everything_survives_reopen(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    photo_src = tmp_path / "IMG_0001.JPG"
    photo_src.write_bytes(os.urandom(5000))
    with Project.create(folder, "Round trip") as p:
        mochi = p.add_concept("Mochi", "cat")
        mug = p.add_concept("Blue mug", "mug", token="<bluemug>")
        rel = p.put_file(photo_src)
        photo = p.add_photo(mochi.id, rel, p.sha256_of(rel), photo_src.name, 640, 480)
        mask_rel = p.put_bytes(b"mask", "png")
        p.add_mask(photo.id, mochi.id, mask_rel, "sam", cutout_file=mask_rel, quality=0.9)
        layout = p.add_layout(Layout(scene="kitchen", caption="a cat and a mug", seed=3,
                                     source="solver",
                                     objects=(LayoutObject(mochi.id, 0.1, 0.2, 0.4, 0.5, 0),
                                              LayoutObject(mug.id, 0.55, 0.3, 0.4, 0.4, 1))))
        p.add_dataset_item(DatasetItem(image_file=rel, caption="c", token_caption="<mochi> c",
                                       layout_id=layout.id, masks={mochi.id: mask_rel},
                                       scores={"clip": 0.31}, review_state="auto-rejected",
                                       reasons="too small"))
        run = p.add_run(Run(kind="custom-diffusion", config={"steps": 500, "lr": 1e-5},
                            output_dir="runs/0001"))
        p.update_run(run.id, status="finished", metrics_file="runs/0001/metrics.jsonl",
                     dataset_snapshot="snap-1")
        gen = p.add_generation(Generation(prompt="<mochi> cat", seed=1, run_id=run.id,
                                          settings={"steps": 30}, image_file=rel))
        p.add_score(gen.id, "cp-clip", 0.7, concept_id=mochi.id)
        p.add_score(gen.id, "ti-clip", 0.3)
        p.set_meta("note", "hello")
        before = (p.concepts(), p.photos(), p.masks(), p.layouts(), p.dataset_items(),
                  p.runs(), p.generations(), p.scores(), p.summary())
    assert sidecars(folder / "catalogue.sqlite") == []
    with Project.open(folder) as p:
        after = (p.concepts(), p.photos(), p.masks(), p.layouts(), p.dataset_items(),
                 p.runs(), p.generations(), p.scores(), p.summary())
        assert p.meta("note") == "hello"
        assert p.dataset_items()[0].masks == {mochi.id: mask_rel}
        assert p.runs()[0].finished_at  # a final status stamps finished_at
        assert p.abspath(rel).read_bytes() == photo_src.read_bytes()
    assert after == before


def test_killed_writer_loses_no_committed_row(tmp_path: Path, repo_root: Path) -> None:
    folder = tmp_path / "proj"
    Project.create(folder, "p").close()
    code = textwrap.dedent(f"""
        import os
        from engine.project import Project
        p = Project.open({str(folder)!r})
        p.add_concept("Mochi", "cat")
        os._exit(1)
    """)
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, timeout=60,
                            capture_output=True)
    assert result.returncode == 1, result.stderr.decode(errors="replace")
    with Project.open(folder) as p:
        assert [c.name for c in p.concepts()] == ["Mochi"]


# --------------------------------------------------------------------------- damaged / newer


def _truncate_half(catalogue: Path) -> None:
    data = catalogue.read_bytes()
    catalogue.write_bytes(data[: len(data) // 2])


def _truncate_tail(catalogue: Path) -> None:
    data = catalogue.read_bytes()
    catalogue.write_bytes(data[:-100])


def _zero_a_page(catalogue: Path) -> None:
    # Right size, valid header: only SQLite's own integrity check can tell.
    data = catalogue.read_bytes()
    catalogue.write_bytes(data[:8192] + bytes(4096) + data[12288:])


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda c: c.write_bytes(os.urandom(8192)), id="random-bytes"),
        pytest.param(_truncate_half, id="truncated-half"),
        pytest.param(_truncate_tail, id="truncated-tail"),
        pytest.param(lambda c: c.write_text("name = my project\n" * 50), id="text-file"),
        pytest.param(lambda c: c.write_bytes(b""), id="empty"),
        pytest.param(_zero_a_page, id="zeroed-page"),
    ],
)
def test_damaged_catalogue_is_reported_and_left_untouched(tmp_path: Path, damage) -> None:
    folder = tmp_path / "proj"
    with Project.create(folder, "p") as p:
        for i in range(40):  # a few pages, so truncation cuts real data
            p.add_concept(f"concept {i}", "thing")
    catalogue = folder / "catalogue.sqlite"
    damage(catalogue)
    before = sha256_file(catalogue)
    with pytest.raises(ProjectError) as info:
        Project.open(folder)
    message = str(info.value)
    assert str(catalogue) in message and "damaged" in message and "\n" not in message
    assert sha256_file(catalogue) == before
    assert sidecars(catalogue) == []
    assert not list(folder.glob("*.bak"))


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    Project.create(folder, "p").close()
    catalogue = folder / "catalogue.sqlite"
    conn = sqlite3.connect(catalogue)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    assert sidecars(catalogue) == []
    before = sha256_file(catalogue)
    with pytest.raises(ProjectError) as info:
        Project.open(folder)
    message = str(info.value)
    assert "newer version of MyCanvas Studio" in message
    assert "99" in message and str(CURRENT_VERSION) in message and str(catalogue) in message
    assert sha256_file(catalogue) == before
    assert sidecars(catalogue) == []


def test_foreign_sqlite_database_is_not_a_catalogue(tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue.sqlite"
    conn = sqlite3.connect(catalogue)
    conn.execute("CREATE TABLE songs (title TEXT)")
    conn.commit()
    conn.close()
    before = sha256_file(catalogue)
    with pytest.raises(ProjectError, match="not a MyCanvas catalogue"):
        Project.open(tmp_path)
    assert sha256_file(catalogue) == before
    assert sidecars(catalogue) == []


# --------------------------------------------------------------------------- migrations


def test_fixture_matches_migration_1() -> None:
    fixture = sqlite3.connect(":memory:")
    fixture.executescript(FIXTURE_V1.read_text(encoding="utf-8"))
    fresh = sqlite3.connect(":memory:")
    schema_module.apply_migrations(fresh, 0, 1)
    assert table_shapes(fixture) == table_shapes(fresh)
    assert fixture.execute("PRAGMA user_version").fetchone()[0] == 1


def test_migration_from_v1_keeps_data_and_backs_up(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    catalogue = build_v1(folder)
    original_dump = dump(catalogue)
    with Project.open(folder) as p:
        assert p.schema_version == CURRENT_VERSION == 6
        assert [(c.id, c.name, c.token, c.class_word) for c in p.concepts()] == [
            (1, "Mochi", "<mochi>", "cat"), (2, "Blue mug", "<blue-mug>", "mug")]
        assert [ph.original_name for ph in p.photos(1)] == ["IMG_0001.JPG", "mochi sofa.png"]
        assert [m.quality for m in p.masks()] == [0.91, None]
        # Masks from before migration 6 name no profile: they count as real, unflagged.
        assert [(m.profile, m.test_model, m.flag) for m in p.masks()] == [("", False, "")] * 2
        layouts = p.layouts()
        assert layouts[0].objects[1] == LayoutObject(2, 0.6, 0.4, 0.3, 0.35, 1)
        items = p.dataset_items()
        assert [i.review_state for i in items] == ["auto-kept", "auto-kept"]
        assert all(i.scores == {} and i.reasons == "" and i.token_caption is None
                   for i in items)
        assert set(items[0].masks) == {1, 2}
        runs = p.runs()
        assert [(r.kind, r.status, r.config) for r in runs] == [
            ("custom-diffusion", "finished", {"steps": 500, "lr": 1e-05}),
            ("em-extract", "failed", {"rounds": 3})]
        assert runs[0].dataset_snapshot is None and runs[0].metrics_file is None
        assert p.generations() == [] and p.scores() == []
        assert p.meta("name") == "Mochi and the mug"
        # The new columns and tables work on migrated data.
        p.set_review_state(items[0].id, "accepted")
        gen = p.add_generation(Generation(prompt="<mochi>", run_id=runs[0].id))
        p.add_score(gen.id, "cp-clip", 0.5, concept_id=1)
        migrated_shape = table_shapes(p._live())
    backup = folder / "catalogue.v1.bak"
    # The backup is made by SQLite's backup API (never a byte copy of a live file, see
    # connection.inspect_catalogue): the same rows and schema, at the old version.
    assert backup.is_file() and dump(backup) == original_dump
    fresh = Project.create(tmp_path / "fresh", "fresh")
    with fresh:
        assert table_shapes(fresh._live()) == migrated_shape
    # Opening again neither migrates nor backs up a second time.
    backup_mtime = backup.stat().st_mtime_ns
    with Project.open(folder) as p:
        assert p.dataset_items()[0].review_state == "accepted"
    assert backup.stat().st_mtime_ns == backup_mtime


def test_failed_migration_rolls_back_completely(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "old"
    build_v1(folder)
    broken = (*schema_module.MIGRATIONS[1], "CREATE TABLE concepts (clash TEXT)")
    monkeypatch.setattr(schema_module, "MIGRATIONS",
                        (schema_module.MIGRATIONS[0], broken, *schema_module.MIGRATIONS[2:]))
    expected = rf"Could not upgrade .* schema {CURRENT_VERSION}"
    with pytest.raises(ProjectError, match=expected) as info:
        Project.open(folder)
    assert "catalogue.v1.bak" in str(info.value)
    conn = sqlite3.connect(folder / "catalogue.sqlite")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    columns = {r[1] for r in conn.execute("PRAGMA table_info(dataset_items)")}
    assert "review_state" not in columns
    assert conn.execute("SELECT COUNT(*) FROM concepts").fetchone()[0] == 2
    conn.close()


# --------------------------------------------------------------------------- names and paths


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "..", "a/b", "a\\b", "CON", "nul.txt", "🐱", "Mochi 🐱", "x" * 64,
     "/etc/passwd", "C:\\Windows"],
)
def test_hostile_concept_names_never_become_paths(project: Project, name: str) -> None:
    concept = project.add_concept(name, "thing")
    assert concept.name == name  # stored verbatim: it is only ever a label
    assert project.concept_by_name(name) == concept
    folder = concept_dir_name(concept)
    assert folder and "/" not in folder and "\\" not in folder and folder not in (".", "..")
    assert resolve_inside(project.root, folder).parent == project.root.resolve()
    assert concept.token.startswith("<") and concept.token.endswith(">")
    assert re.fullmatch(r"<[a-z0-9]+(?:[a-z0-9_-]*[a-z0-9])?>", concept.token), concept.token
    assert "." not in folder  # "nul.txt" is as reserved on Windows as "nul"


@pytest.mark.parametrize("name", ["", "   ", "x" * 200, "a\nb", "tab\there", "nul\x00"])
def test_bad_concept_names_are_refused(project: Project, name: str) -> None:
    with pytest.raises(InputError, match="Concept name"):
        project.add_concept(name, "cat")
    assert project.concepts() == []


def test_concept_names_tokens_and_renames(project: Project) -> None:
    a = project.add_concept("Mochi!", "cat")
    b = project.add_concept("mochi?", "cat")
    c = project.add_concept("🐱", "cat")
    d = project.add_concept("😺", "cat")
    assert [a.token, b.token, c.token, d.token] == ["<mochi>", "<mochi2>", "<concept>",
                                                    "<concept2>"]
    assert len({concept_dir_name(x) for x in (a, b, c, d)}) == 4
    with pytest.raises(InputError, match="already used"):
        project.add_concept("MOCHI!", "cat")
    with pytest.raises(InputError, match="token"):
        project.add_concept("Other", "cat", token="<../x>")
    with pytest.raises(InputError, match=r"token .* already used"):
        project.add_concept("Other", "cat", token="<mochi>")
    with pytest.raises(InputError, match="Class word"):
        project.add_concept("Other", "  ")
    renamed = project.rename_concept(a.id, "Mochi the Great")
    assert renamed.token == a.token and renamed.name == "Mochi the Great"
    assert project.rename_concept(a.id, "MOCHI THE GREAT").name == "MOCHI THE GREAT"
    with pytest.raises(InputError, match="already used"):
        project.rename_concept(b.id, "mochi the great")
    assert project.set_class_word(b.id, "kitten").class_word == "kitten"
    assert project.concept_by_name("mochi THE great") == project.concept(a.id)
    assert project.concept_by_name("nobody") is None
    with pytest.raises(InputError, match="No concept with id 999"):
        project.concept(999)


@pytest.mark.parametrize(
    "rel", ["../x", "files/../../x", "/etc/passwd", "C:/Windows/x", "files\\..\\x", "", ".",
            "files//x", "files/./x"],
)
def test_abspath_refuses_escapes(project: Project, rel: str) -> None:
    with pytest.raises(InputError):
        project.abspath(rel)


def test_abspath_of_absolute_path_is_refused(project: Project, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="relative"):
        project.abspath(str(tmp_path / "elsewhere.png"))
    assert project.abspath("files/ab/x.png") == project.root.resolve() / "files/ab/x.png"


def test_escaping_symlink_is_refused(project: Project, tmp_path: Path) -> None:
    (project.root / "files" / "link").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(InputError, match="outside"):
        project.abspath("files/link/x.png")


# --------------------------------------------------------------------------- files


def test_content_addressed_dedup(project: Project, tmp_path: Path, monkeypatch) -> None:
    writes: list[Path] = []
    real_write = files_module.atomic_write_bytes

    def counting_write(path, data):
        writes.append(Path(path))
        real_write(path, data)

    monkeypatch.setattr(files_module, "atomic_write_bytes", counting_write)
    data = os.urandom(10_000)
    digest = hashlib.sha256(data).hexdigest()
    rel = project.put_bytes(data, "PNG")
    assert rel == f"files/{digest[:2]}/{digest}.png"
    assert project.put_bytes(data, ".png") == rel
    assert len(writes) == 1
    assert project.sha256_of(rel) == digest
    src = tmp_path / "photo.png"
    src.write_bytes(data)
    stat_before = project.abspath(rel).stat()
    assert project.put_file(src) == rel
    stat_after = project.abspath(rel).stat()
    assert (stat_before.st_ino, stat_before.st_mtime_ns) == (
        stat_after.st_ino, stat_after.st_mtime_ns)
    other = tmp_path / "other.JPEG"
    other.write_bytes(b"jpeg bytes")
    rel2 = project.put_file(other)
    assert rel2.endswith(".jpeg") and project.abspath(rel2).read_bytes() == b"jpeg bytes"
    assert not [p for p in project.root.rglob("*") if ".tmp-" in p.name]


@pytest.mark.parametrize("ext", ["exe", "py", "", "png/../x", "sh", "pkl", "pt"])
def test_put_refuses_extensions_outside_the_allow_list(project: Project, ext: str) -> None:
    with pytest.raises(InputError, match="extension"):
        project.put_bytes(b"data", ext)


def test_put_file_errors_name_the_file(project: Project, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.png"):
        project.put_file(tmp_path / "missing.png")
    with pytest.raises(InputError, match="no file extension"):
        (tmp_path / "noext").write_bytes(b"x")
        project.put_file(tmp_path / "noext")
    with pytest.raises(ProjectError, match="missing from the project"):
        project.sha256_of("files/00/none.png")
    assert not [p for p in project.root.rglob("*") if ".tmp-" in p.name]


# --------------------------------------------------------------------------- records


def test_photos_are_idempotent_and_validated(project: Project) -> None:
    c = project.add_concept("Mochi", "cat")
    rel = project.put_bytes(b"photo", "jpg")
    first = project.add_photo(c.id, rel, SHA_A, "a.jpg", 10, 20)
    assert project.add_photo(c.id, rel, SHA_A, "again.jpg", 10, 20) == first
    assert project.photos(c.id) == [first]
    with pytest.raises(InputError, match="sha256"):
        project.add_photo(c.id, rel, "XYZ", "a.jpg", 10, 20)
    with pytest.raises(InputError, match="width"):
        project.add_photo(c.id, rel, "b" * 64, "a.jpg", 0, 20)
    with pytest.raises(InputError, match="Photo file"):
        project.add_photo(c.id, "../outside.jpg", "b" * 64, "a.jpg", 10, 20)
    with pytest.raises(InputError, match="No concept with id 42"):
        project.add_photo(42, rel, "b" * 64, "a.jpg", 10, 20)
    project.delete_photo(first.id)
    assert project.photos() == []


def test_review_state_validation(project: Project) -> None:
    with pytest.raises(InputError, match=r"DatasetItem\.review_state"):
        DatasetItem(image_file="files/x.png", review_state="maybe")
    item = project.add_dataset_item(DatasetItem(image_file="files/x.png"))
    assert item.review_state == "auto-kept"
    with pytest.raises(InputError, match="review_state"):
        project.set_review_state(item.id, "approved")
    updated = project.set_review_state(item.id, "rejected", reasons="blurry")
    assert (updated.review_state, updated.reasons) == ("rejected", "blurry")
    assert project.set_review_state(item.id, "accepted").reasons == "blurry"
    assert project.dataset_items(review_state="accepted") == [project.dataset_item(item.id)]
    assert project.dataset_items(review_state="rejected") == []
    with pytest.raises(InputError, match="review_state"):
        project.dataset_items(review_state="nope")
    # The catalogue itself refuses a bad state written around the API.
    with pytest.raises(sqlite3.IntegrityError):
        project._live().execute("UPDATE dataset_items SET review_state = 'maybe'")


@pytest.mark.parametrize(
    ("box", "field"),
    [((-0.1, 0, 0.5, 0.5), "LayoutObject.x"), ((0, 0, 0, 0.5), "LayoutObject.w"),
     ((0.7, 0, 0.5, 0.5), "LayoutObject.x \\+ w"), ((0, 0.6, 0.5, 0.5), "LayoutObject.y \\+ h"),
     ((float("nan"), 0, 0.5, 0.5), "LayoutObject.x"), ((0, 0, 1.5, 0.5), "LayoutObject.w"),
     ((0, True, 0.5, 0.5), "LayoutObject.y")],
)
def test_layout_boxes_are_validated(box, field: str) -> None:
    with pytest.raises(InputError, match=field):
        LayoutObject(1, *box)


def test_layout_crud_and_unknown_concepts(project: Project) -> None:
    c = project.add_concept("Mochi", "cat")
    layout = project.add_layout(Layout(scene="beach", objects=[LayoutObject(c.id, 0, 0, 1, 1)]))
    assert layout.id is not None and layout.objects == (LayoutObject(c.id, 0.0, 0.0, 1.0, 1.0),)
    with pytest.raises(InputError, match="concept 77"):
        project.add_layout(Layout(scene="x", objects=(LayoutObject(77, 0, 0, 1, 1),)))
    changed = project.update_layout(Layout(id=layout.id, scene="park", caption="new"))
    assert (changed.scene, changed.objects, changed.created_at) == (
        "park", (), layout.created_at)
    item = project.add_dataset_item(DatasetItem(image_file="files/i.png", layout_id=layout.id))
    project.delete_layout(layout.id)
    assert project.layouts() == [] and project.dataset_item(item.id).layout_id is None


def test_runs_and_scores_are_validated(project: Project) -> None:
    with pytest.raises(InputError, match=r"Run\.status"):
        project.add_run(Run(kind="custom-diffusion", status="exploded"))
    with pytest.raises(InputError, match=r"Run\.output_dir"):
        project.add_run(Run(kind="custom-diffusion", output_dir="../../elsewhere"))
    with pytest.raises(InputError, match=r"Run\.config"):
        project.add_run(Run(kind="custom-diffusion", config={"lr": float("nan")}))
    run = project.add_run(Run(kind="em-extract"))
    assert run.status == "queued" and run.finished_at is None
    assert project.update_run(run.id, status="running").finished_at is None
    with pytest.raises(InputError, match=r"Run\.status"):
        project.update_run(run.id, status="done")
    gen = project.add_generation(Generation(prompt="p", run_id=run.id))
    with pytest.raises(InputError, match=r"Score\.metric"):
        project.add_score(gen.id, "fid", 1.0)
    with pytest.raises(InputError, match="ti-clip"):
        Score(generation_id=gen.id, metric="ti-clip", value=0.2, concept_id=1)
    with pytest.raises(InputError, match="No generation with id 5"):
        project.add_score(5, "ti-clip", 0.2)


def test_deleting_a_concept_cascades(project: Project) -> None:
    keep = project.add_concept("Mug", "mug")
    gone = project.add_concept("Mochi", "cat")
    for concept in (keep, gone):
        rel = project.put_bytes(concept.name.encode(), "png")
        photo = project.add_photo(concept.id, rel, project.sha256_of(rel), "x.png", 8, 8)
        project.add_mask(photo.id, concept.id, rel, "sam")
    gen = project.add_generation(Generation(prompt="both"))
    project.add_score(gen.id, "cp-clip", 0.8, concept_id=gone.id)
    project.add_score(gen.id, "cp-clip", 0.6, concept_id=keep.id)
    project.add_score(gen.id, "ti-clip", 0.3)
    project.delete_concept(gone.id)
    assert [c.id for c in project.concepts()] == [keep.id]
    assert {p.concept_id for p in project.photos()} == {keep.id}
    assert {m.concept_id for m in project.masks()} == {keep.id}
    assert sorted((s.metric, s.concept_id) for s in project.scores(gen.id)) == [
        ("cp-clip", keep.id), ("ti-clip", None)]
    assert project.generations() == [project.generation(gen.id)]
    with pytest.raises(InputError, match="No concept"):
        project.delete_concept(gone.id)


def test_concurrent_reads_while_writing(project: Project) -> None:
    errors: list[BaseException] = []
    seen: dict[str, list[int]] = {"a": [], "b": []}
    stop = threading.Event()

    def reader(key: str) -> None:
        try:
            while not stop.is_set():
                seen[key].append(len(project.concepts()))
                project.summary()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(k,)) for k in seen]
    for t in threads:
        t.start()
    try:
        for i in range(60):
            project.add_concept(f"c{i}", "thing")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert errors == []
    for counts in seen.values():
        assert counts and counts == sorted(counts) and counts[-1] <= 60
    assert len(project.concepts()) == 60
