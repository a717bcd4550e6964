"""`mycanvas desktop install|uninstall` on Linux, with XDG_DATA_HOME in a temporary folder:
the entry, icon and MIME type land where freedesktop desktops look, and uninstalling leaves
the folders exactly as they were (other apps' files and caches included)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main as cli_main
from engine.cli.desktop import APP_ID, MIME_TYPE, LinuxDesktop, desktop_entry

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="freedesktop")

OTHER_MIME = """<?xml version="1.0" encoding="UTF-8"?>
<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">
  <mime-type type="application/x-other-app"><glob pattern="*.otherapp"/></mime-type>
</mime-info>
"""


def _state(root: Path) -> dict[str, bytes | None]:
    """Every folder (None) and file (its bytes) under root."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def _others(home: Path, which) -> None:
    """Another app already in the menu, with its MIME type and caches."""
    (home / "applications").mkdir(parents=True)
    (home / "applications" / "other.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Other\nExec=other %f\n"
        "MimeType=application/x-other-app;\n")
    (home / "mime" / "packages").mkdir(parents=True)
    (home / "mime" / "packages" / "other.xml").write_text(OTHER_MIME)
    (home / "icons" / "hicolor").mkdir(parents=True)
    (home / "documents.txt").write_text("not ours")
    LinuxDesktop(home, which)._update_caches()


def _no_tools(_name: str) -> None:
    return None


@pytest.mark.parametrize("others", [False, True], ids=["empty", "other-apps"])
@pytest.mark.parametrize("tools", ["absent", "present"])
def test_install_then_uninstall_leaves_the_folders_as_they_were(tmp_path, monkeypatch, others,
                                                                tools, capsys):
    which = shutil.which if tools == "present" else _no_tools
    if tools == "present" and not shutil.which("update-mime-database"):
        pytest.skip("update-mime-database is not installed here")
    home = tmp_path / "xdg-data"
    home.mkdir()
    if others:
        _others(home, which)
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.setattr("engine.cli.desktop.find_tool", which)
    before = _state(home)

    assert cli_main(["desktop", "install"]) == 0
    entry = home / "applications" / f"{APP_ID}.desktop"
    text = entry.read_text()
    assert f"MimeType={MIME_TYPE};" in text and f"Icon={APP_ID}" in text
    assert (home / "icons/hicolor/scalable/apps" / f"{APP_ID}.svg").read_bytes().startswith(
        b"<svg")
    assert (home / "mime/packages" / f"{APP_ID}.xml").is_file()
    if tools == "present":  # the MIME database knows a project's catalogue
        globs = (home / "mime" / "globs2").read_text()
        assert f"{MIME_TYPE}:catalogue.sqlite" in globs
        if others:
            assert "application/x-other-app" in globs
    assert cli_main(["desktop", "install"]) == 0  # a second install replaces the first
    assert "wrote" in capsys.readouterr().out

    assert cli_main(["desktop", "uninstall"]) == 0
    assert "removed" in capsys.readouterr().out
    assert _state(home) == before
    assert cli_main(["desktop", "uninstall"]) == 0  # nothing left to remove: says so
    assert "was not in the applications menu" in capsys.readouterr().out
    assert _state(home) == before


def test_the_entry_starts_the_installed_window_with_the_project_and_quotes_paths():
    entry = desktop_entry(["/opt/my apps/bin/mycanvas-studio"], ["mime/mime.cache"])
    assert 'Exec="/opt/my apps/bin/mycanvas-studio" %f\n' in entry
    assert "X-MyCanvas-Created=mime/mime.cache;" in entry
    assert desktop_entry(["/usr/bin/mycanvas-studio"], []).count("Exec=/usr/bin/") == 1


@pytest.mark.skipif(not shutil.which("desktop-file-validate"), reason="no validator here")
def test_the_entry_is_valid(tmp_path):
    path = tmp_path / f"{APP_ID}.desktop"
    path.write_text(desktop_entry(["/usr/bin/mycanvas-studio"], ["mime/x"]))
    done = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_other_platforms_get_one_line_saying_what_to_do(monkeypatch, capsys):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cli_main(["desktop", "install"]) != 0
    assert "macOS" in capsys.readouterr().err
