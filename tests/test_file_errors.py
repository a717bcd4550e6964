"""Errors about a file name the file and say what to do, never "Unexpected ...": `generate
--out` is checked before anything is made, an export onto a read-only file system says so (not
"No space left"), a damaged exported .safetensors names its path."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from engine.atomic import check_writable_folder, looks_like_disk_full
from engine.cli import main
from engine.errors import InputError
from engine.jobs.running import describe_failure
from engine.project import DatasetItem, Project

REPO = Path(__file__).resolve().parent.parent


def _read_only_mount_works(folder: Path) -> bool:
    if shutil.which("unshare") is None or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c",
                            f"mount -t tmpfs -o size=1m tmpfs {folder} && "
                            f"mount -o remount,ro {folder}"], capture_output=True)
    return probe.returncode == 0


def mycanvas_on_read_only(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`mycanvas ARGS` with `folder` a 1 MB read-only file system (a private mount namespace,
    so nothing outside this command sees it)."""
    code = "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))"
    command = (f"mount -t tmpfs -o size=1m tmpfs {folder} && mount -o remount,ro {folder} && "
               'code="$1"; shift; exec "$0" -c "$code" "$@"')
    return subprocess.run(["unshare", "-rm", "sh", "-c", command, sys.executable, code, *args],
                          capture_output=True, text=True, cwd=REPO, env=os.environ.copy(),
                          timeout=120)


@pytest.fixture
def read_only(tmp_path) -> Path:
    folder = tmp_path / "read-only"
    folder.mkdir()
    if not _read_only_mount_works(folder):
        pytest.skip("no private mounts here (needs Linux user namespaces)")
    return folder


def _project_with_item(folder: Path) -> Path:
    with Project.create(folder, "export") as proj:
        image = Image.new("RGB", (64, 64), (20, 90, 160))
        import io

        buf = io.BytesIO()
        image.save(buf, format="PNG")
        proj.add_dataset_item(DatasetItem(image_file=proj.put_bytes(buf.getvalue(), "png"),
                                          caption="a cup", token_caption="<cup> mug"))
    return folder


def test_generate_out_is_checked_before_anything_is_made(tmp_path, monkeypatch, capsys):
    import engine.cli.generate as cli_generate

    Project.create(tmp_path / "p", "out").close()
    started = []
    monkeypatch.setattr(cli_generate, "run_job_in_cli", lambda *a, **k: started.append(a))
    existing = tmp_path / "picture.png"
    existing.write_bytes(b"not a folder")
    code = main(["generate", str(tmp_path / "p"), "--prompt", "a <mochi> cat", "--out",
                 str(existing)])
    err = capsys.readouterr().err
    assert code == 1 and started == []
    assert f"--out {existing} is a file, not a folder" in err and "Unexpected" not in err
    nested = tmp_path / "new" / "folder"
    assert check_writable_folder(nested, "--out") == nested and not nested.exists()


def test_generate_out_on_a_read_only_file_system(tmp_path, read_only):
    Project.create(tmp_path / "p", "out").close()
    done = mycanvas_on_read_only(read_only, "generate", str(tmp_path / "p"), "--prompt",
                                 "a <mochi> cat", "--out", str(read_only / "pictures"))
    assert done.returncode == 1
    assert f"--out {read_only / 'pictures'} cannot be written: it is on a read-only file " \
           "system" in done.stderr, done.stderr


def test_export_dataset_to_a_read_only_file_system_says_read_only(tmp_path, read_only):
    project = _project_with_item(tmp_path / "p")
    done = mycanvas_on_read_only(read_only, "export-dataset", str(project),
                                 str(read_only / "dataset"))
    assert done.returncode == 1
    line = done.stderr.strip().splitlines()[-1]
    assert "read-only file system" in line and str(read_only / "dataset") in line, line
    assert "No space" not in line and "Unexpected" not in line


def test_a_read_only_error_is_never_taken_for_a_full_disk(tmp_path):
    refused = OSError(errno.EROFS, "Read-only file system", str(tmp_path / "x"))
    assert not looks_like_disk_full(refused, tmp_path, needed=1 << 60)
    assert describe_failure(refused) == (f"{tmp_path / 'x'}: it is on a read-only file system; "
                                         "choose a folder on a writable disk")
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", "/nowhere/f.png")
    assert describe_failure(missing) == "/nowhere/f.png: it does not exist; check the path"


def test_a_damaged_exported_safetensors_names_its_path(tmp_path):
    from engine.generate.loading import _load_tensors

    damaged = tmp_path / "runs" / "3" / "export" / "<mochi>.safetensors"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(InputError) as caught:
        _load_tensors(damaged)
    message = str(caught.value)
    assert message.startswith(f"{damaged}: it is damaged or not a safetensors file")
    assert "Export the run again" in message
