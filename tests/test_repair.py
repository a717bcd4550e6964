"""`mycanvas repair`: a damaged catalogue is rebuilt from what can be read; the damaged file
is kept byte for byte; the report says what was saved and what was lost."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ProjectError
from engine.project import Project
from engine.project.records import Layout, LayoutObject
from engine.project.repair import repair_project
from engine.project.sqlite_pages import (
    PageError,
    PageImage,
    committed_wal_pages,
    decode_record,
    read_varint,
)

N_LAYOUTS = 400


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_project(folder: Path) -> dict[str, int]:
    """A project with several pages per table: 2 concepts, 2 photos + masks, many layouts."""
    with Project.create(folder, "damaged soon") as proj:
        a = proj.add_concept("Mochi", "cat")
        b = proj.add_concept("Mug", "mug")
        for concept, payload in ((a, b"cat photo"), (b, b"mug photo")):
            rel = proj.put_bytes(payload, "png")
            photo = proj.add_photo(concept.id, rel, hashlib.sha256(payload).hexdigest(),
                                   "x.png", 10, 10)
            proj.add_mask(photo.id, concept.id, proj.put_bytes(payload + b" mask", "png"),
                          "test")
        for i in range(N_LAYOUTS):
            proj.add_layout(Layout(scene=f"scene number {i}", caption=f"caption {i} " * 6,
                                   objects=(LayoutObject(a.id, 0.1, 0.1, 0.3, 0.3, 0),
                                            LayoutObject(b.id, 0.5, 0.5, 0.3, 0.3, 1))))
    conn = sqlite3.connect(folder / "catalogue.sqlite")
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("concepts", "photos", "masks", "layouts")}
    finally:
        conn.close()


def page_size_and_root(catalogue: Path, table: str) -> tuple[int, int]:
    conn = sqlite3.connect(catalogue)
    try:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                            (table,)).fetchone()[0]
        return size, root
    finally:
        conn.close()


def garble_page(catalogue: Path, page: int, page_size: int) -> None:
    data = bytearray(catalogue.read_bytes())
    start = (page - 1) * page_size
    data[start:start + page_size] = bytes((i * 37 + 11) % 256 for i in range(page_size))
    catalogue.write_bytes(bytes(data))


def rows(folder: Path, table: str) -> int:
    with Project.open(folder) as proj:
        return int(proj._rows(f"SELECT COUNT(*) FROM {table}")[0][0])


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    folder = tmp_path / "proj"
    return folder, build_project(folder)


def test_truncated_by_one_page(project):
    folder, before = project
    catalogue = folder / "catalogue.sqlite"
    size, _root = page_size_and_root(catalogue, "layouts")
    with open(catalogue, "r+b") as f:
        f.truncate(catalogue.stat().st_size - size)
    damaged_sha = sha256(catalogue)
    with pytest.raises(ProjectError, match="truncated"):
        Project.open(folder)

    report = repair_project(folder)

    assert report.damaged and report.kept_damaged
    assert sha256(Path(report.kept_damaged)) == damaged_sha  # the original bytes, kept
    with Project.open(folder) as proj:
        assert [c.name for c in proj.concepts()] == ["Mochi", "Mug"]
        assert len(proj.photos()) == 2 and len(proj.masks()) == 2
        layouts = proj.layouts()
        # One page of rows at most is gone; every row that is left reads whole.
        assert before["layouts"] - 40 <= len(layouts) < before["layouts"]
        assert all(lay.caption.startswith(f"caption {lay.id - 1} ") for lay in layouts)
        assert proj._rows("PRAGMA integrity_check")[0][0] == "ok"
    assert report.rows["layouts"] == len(layouts)
    saved = json.loads(Path(report.report_file).read_text())
    assert saved["rows"]["layouts"] == len(layouts)
    assert "Recovered:" in report.summary() and "kept as" in report.summary()


def test_garbled_interior_page_loses_no_row(project):
    """The tree's interior page is noise: its leaves are found as orphans and placed by
    their columns, so every layout comes back."""
    folder, before = project
    catalogue = folder / "catalogue.sqlite"
    size, root = page_size_and_root(catalogue, "layouts")
    image = PageImage.from_bytes(catalogue.read_bytes())
    assert image.page_type(root) == 5  # interior table page: the test needs one
    garble_page(catalogue, root, size)
    damaged_sha = sha256(catalogue)

    report = repair_project(folder)

    assert sha256(Path(report.kept_damaged)) == damaged_sha
    assert report.rows_from_orphan_pages["layouts"] == before["layouts"]
    assert report.lost_rows == 0
    assert rows(folder, "layouts") == before["layouts"]
    assert rows(folder, "concepts") == 2


def test_garbled_leaf_page_loses_only_its_rows(project):
    folder, before = project
    catalogue = folder / "catalogue.sqlite"
    size, root = page_size_and_root(catalogue, "layouts")
    image = PageImage.from_bytes(catalogue.read_bytes())
    leaf = image.children(root)[3]
    on_leaf = len([c for c in image.leaf_cells(leaf, set())])
    garble_page(catalogue, leaf, size)

    report = repair_project(folder)

    assert rows(folder, "layouts") == before["layouts"] - on_leaf
    assert rows(folder, "masks") == 2 and rows(folder, "photos") == 2
    assert any(f"page {leaf}" in p for p in report.problems)


def test_a_row_whose_parent_is_lost_goes_with_it(tmp_path):
    """Masks reference photos: when the photos' page is lost, the masks cannot stand."""
    folder = tmp_path / "proj"
    build_project(folder)
    catalogue = folder / "catalogue.sqlite"
    size, photos_root = page_size_and_root(catalogue, "photos")
    garble_page(catalogue, photos_root, size)

    report = repair_project(folder)

    assert report.orphans_removed == {"masks": 2}
    assert rows(folder, "photos") == 0 and rows(folder, "masks") == 0
    assert rows(folder, "layouts") == N_LAYOUTS


def test_rows_only_in_the_write_ahead_log_are_recovered(tmp_path):
    """Commits still in the WAL (never checkpointed) count: frames are laid over the pages."""
    folder = tmp_path / "proj"
    build_project(folder)
    catalogue = folder / "catalogue.sqlite"
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "c.execute('PRAGMA wal_autocheckpoint = 0')\n"
         "c.execute(\"INSERT INTO meta (key, value) VALUES ('only-in-wal', 'yes')\")\n"
         "print('done', flush=True)\n"
         "time.sleep(60)\n", str(catalogue)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "done"
        # While the writer lives its WAL is not folded in; copy the pair as a crash leaves it.
        copy = tmp_path / "copy"
        shutil.copytree(folder, copy)
    finally:
        writer.kill()
        writer.wait()
    assert (copy / "catalogue.sqlite-wal").stat().st_size > 0
    size, root = page_size_and_root(catalogue, "layouts")
    garble_page(copy / "catalogue.sqlite", root, size)

    report = repair_project(copy)

    # The old log moved with the damaged file: it must never be applied to the new one.
    assert Path(report.kept_damaged + "-wal").is_file()
    assert not (copy / "catalogue.sqlite-wal").exists()
    with Project.open(copy) as proj:
        assert proj.meta("only-in-wal") == "yes"
    assert rows(copy, "layouts") == N_LAYOUTS


def test_files_are_checked_against_the_rows(project):
    folder, _before = project
    with Project.open(folder) as proj:
        photo, other = proj.photos()
    (folder / photo.file).unlink()
    (folder / other.file).write_bytes(b"not what the name says")
    catalogue = folder / "catalogue.sqlite"
    size, root = page_size_and_root(catalogue, "layouts")
    garble_page(catalogue, root, size)

    report = repair_project(folder)

    assert report.files_missing == [photo.file]
    assert report.files_corrupt == [other.file]
    assert report.files_checked == 4
    assert "1 missing, 1 damaged" in report.summary()


def test_dry_run_writes_nothing(project):
    folder, _ = project
    catalogue = folder / "catalogue.sqlite"
    size, root = page_size_and_root(catalogue, "layouts")
    garble_page(catalogue, root, size)
    listing = sorted(p.name for p in folder.iterdir())
    damaged_sha = sha256(catalogue)

    report = repair_project(folder, dry_run=True)

    assert report.rows["layouts"] == N_LAYOUTS and report.kept_damaged is None
    assert sorted(p.name for p in folder.iterdir()) == listing
    assert sha256(catalogue) == damaged_sha


def test_a_sound_catalogue_is_left_alone(project):
    folder, _ = project
    before = sha256(folder / "catalogue.sqlite")
    report = repair_project(folder)
    assert not report.damaged and report.kept_damaged is None
    assert "nothing to repair" in report.summary()
    assert sha256(folder / "catalogue.sqlite") == before


def test_refused_while_open_here_or_in_another_process(project):
    folder, _ = project
    with Project.open(folder), pytest.raises(ProjectError, match="open in this program"):
        repair_project(folder, force=True)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom engine.project import Project\n"
         "p = Project.open(sys.argv[1])\nprint('open', flush=True)\ntime.sleep(60)\n",
         str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(ProjectError, match=f"another program \\(process {holder.pid}\\)"):
            repair_project(folder, force=True)
    finally:
        holder.kill()
        holder.wait()


def test_repair_command(project, capsys):
    from engine.cli import main

    folder, _ = project
    catalogue = folder / "catalogue.sqlite"
    size, root = page_size_and_root(catalogue, "layouts")
    garble_page(catalogue, root, size)
    assert main(["repair", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"{N_LAYOUTS} layouts" in out and "kept as" in out
    assert rows(folder, "layouts") == N_LAYOUTS


# --------------------------------------------------------------------------- format reader


def test_varints_and_records_decode_by_hand():
    assert read_varint(bytes([0x05]), 0) == (5, 1)
    assert read_varint(bytes([0x81, 0x00]), 0) == (128, 2)
    assert read_varint(bytes([0xFF] * 8 + [0x01]), 0) == ((1 << 64) - 255, 9)
    # header: size 4, types NULL, int8, text of 2 bytes (13 + 2*2 = 17); body: -3, "hi"
    assert decode_record(bytes([4, 0, 1, 17, 0xFD]) + b"hi") == [None, -3, "hi"]
    with pytest.raises(PageError):
        decode_record(bytes([4, 0, 1, 17, 0xFD]) + b"h")  # body shorter than its header says
    with pytest.raises(PageError):
        decode_record(bytes([2, 10]))  # reserved serial type


def test_wal_frames_after_a_broken_checksum_are_ignored(tmp_path):
    catalogue = tmp_path / "db.sqlite"
    conn = sqlite3.connect(catalogue, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")
    wal = (tmp_path / "db.sqlite-wal").read_bytes()
    conn.close()
    size = int.from_bytes(wal[8:12], "big")
    pages, db_size = committed_wal_pages(wal, size)
    assert pages and db_size >= 2
    broken = bytearray(wal)
    broken[32 + 24 + 50] ^= 0xFF  # the first frame's page data
    assert committed_wal_pages(bytes(broken), size) == ({}, 0)
