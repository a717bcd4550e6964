"""`mycanvas desktop install|uninstall`: the app in the desktop's menu, for the current user.

Linux (freedesktop): a desktop entry in $XDG_DATA_HOME/applications, the icon in the hicolor
theme, and a MIME type `application/x-mycanvas-project` for a project's catalogue file, so
opening a project's `catalogue.sqlite` from a file manager opens the project in the app (a
folder itself is always `inode/directory`, which we leave to the file manager). The caches
are updated where their tools exist. The desktop entry records what installing created (the
folders, the caches' files), so uninstalling leaves the folders as they were.
macOS and Windows: one line saying what to do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.cli.progress import EXIT_FAILED, EXIT_OK
from engine.cli.registry import command
from engine.paths import RESOURCES

APP_ID = "mycanvas-studio"
MIME_TYPE = "application/x-mycanvas-project"
ICON_SOURCE = RESOURCES / "icons" / f"{APP_ID}.svg"
CREATED_KEY = "X-MyCanvas-Created"
# What the cache tools write, beside the sources they read (mime/packages, applications).
MIME_CACHE_DIR = "mime"

MIME_XML = f"""<?xml version="1.0" encoding="UTF-8"?>
<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">
  <mime-type type="{MIME_TYPE}">
    <comment>MyCanvas Studio project</comment>
    <icon name="{APP_ID}"/>
    <glob pattern="catalogue.sqlite" weight="90"/>
  </mime-type>
</mime-info>
"""

# which(tool) -> path or None; tests pass one that finds nothing.
Which = Callable[[str], "str | None"]


def find_tool(name: str) -> str | None:
    return shutil.which(name)


def xdg_data_home() -> Path:
    env = os.environ.get("XDG_DATA_HOME")
    return Path(env) if env and os.path.isabs(env) else Path.home() / ".local" / "share"


@dataclass
class LinuxDesktop:
    """The files of the freedesktop integration under one XDG data folder."""

    home: Path = field(default_factory=xdg_data_home)
    which: Which | None = None  # how cache tools are found; None: find_tool

    @property
    def entry(self) -> Path:
        return self.home / "applications" / f"{APP_ID}.desktop"

    def our_files(self) -> dict[Path, bytes]:
        icon = ICON_SOURCE.read_bytes()
        hicolor = self.home / "icons" / "hicolor" / "scalable"
        return {
            hicolor / "apps" / f"{APP_ID}.svg": icon,
            hicolor / "mimetypes" / f"{MIME_TYPE.replace('/', '-')}.svg": icon,
            self.home / MIME_CACHE_DIR / "packages" / f"{APP_ID}.xml": MIME_XML.encode(),
        }

    def _tree(self) -> set[Path]:
        """What exists of the folders we write to (and their parents up to the data
        folder): never a walk of the whole data folder, which holds other apps' data."""
        hicolor = self.home / "icons" / "hicolor" / "scalable"
        seen: set[Path] = set()
        for root, deep in ((self.home / "applications", False),
                           (self.home / MIME_CACHE_DIR, True),
                           (hicolor / "apps", False), (hicolor / "mimetypes", False)):
            seen.update(p for p in [root, *root.parents]
                        if p.is_relative_to(self.home) and p.exists())
            if root.is_dir():
                seen.update(root.rglob("*") if deep else root.iterdir())
        return seen

    def _update_caches(self) -> list[str]:
        """Run the cache tools that exist; returns the ones that ran."""
        ran = []
        for tool, folder in (("update-mime-database", self.home / MIME_CACHE_DIR),
                             ("update-desktop-database", self.home / "applications")):
            exe = (self.which or find_tool)(tool)
            if exe and folder.is_dir():
                subprocess.run([exe, str(folder)], capture_output=True, timeout=120,
                               check=False)
                ran.append(tool)
        return ran

    def install(self, launcher: list[str]) -> list[Path]:
        if self.entry.exists():
            self.uninstall()  # a reinstall starts from the state before the first one
        before = self._tree()
        written = self.our_files()
        for path, data in written.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        self.entry.parent.mkdir(parents=True, exist_ok=True)
        self.entry.write_text(desktop_entry(launcher, []), encoding="utf-8")
        self._update_caches()
        created = sorted(str(p.relative_to(self.home)) for p in self._tree() - before
                         if p not in written and p != self.entry)
        self.entry.write_text(desktop_entry(launcher, created), encoding="utf-8")
        return [self.entry, *written]

    def uninstall(self) -> list[Path]:
        created = [self.home / rel for rel in _created_list(self.entry)]
        removed = [p for p in [self.entry, *self.our_files()] if p.is_file()]
        if not removed:
            return []
        for path in removed:
            path.unlink()
        self._update_caches()  # what other apps registered is rebuilt without ours
        mime_sources = self.home / MIME_CACHE_DIR / "packages"
        no_other_mime = not (mime_sources.is_dir() and any(mime_sources.iterdir()))
        apps = self.home / "applications"
        no_other_apps = not (apps.is_dir() and any(apps.glob("*.desktop")))
        for path in sorted(created, key=lambda p: len(p.parts), reverse=True):
            in_mime = path.is_relative_to(self.home / MIME_CACHE_DIR)
            cache_of_nothing = (in_mime and no_other_mime) or (
                path.parent == apps and no_other_apps)
            if path.is_file() and cache_of_nothing:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        return removed


def _escape_exec(arg: str) -> str:
    """One argument of a desktop entry's Exec key (the spec's quoting rules)."""
    if arg and not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`'):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'.replace("\\", "\\\\")  # the key's own escaping doubles backslashes


def desktop_entry(launcher: list[str], created: list[str]) -> str:
    exec_line = " ".join(_escape_exec(a) for a in launcher).replace("%", "%%")
    lines = [
        "[Desktop Entry]", "Type=Application", "Name=MyCanvas Studio",
        "GenericName=Personal image generator",
        "Comment=Put several of your own pets and things together in generated pictures",
        f"Exec={exec_line} %f", f"Icon={APP_ID}", "Terminal=false",
        "Categories=Graphics;2DGraphics;", f"MimeType={MIME_TYPE};",
        f"StartupWMClass={APP_ID}",
    ]
    if created:
        lines.append(f"{CREATED_KEY}=" + ";".join(c.replace(";", r"\;") for c in created) + ";")
    return "\n".join(lines) + "\n"


def _created_list(entry: Path) -> list[str]:
    if not entry.is_file():
        return []
    for line in entry.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{CREATED_KEY}="):
            value = line.split("=", 1)[1].replace(r"\;", "\0")
            return [v.replace("\0", ";") for v in value.split(";") if v]
    return []


def gui_launcher() -> list[str]:
    """The command that opens the window: the `mycanvas-studio` script beside this Python
    (a venv, pipx, uv tool), else on PATH, else this Python running the launcher."""
    script = Path(sys.executable).parent / APP_ID
    if script.is_file():
        return [str(script)]
    found = shutil.which(APP_ID)
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "desktop_app.launcher", "gui"]


OTHER_PLATFORMS = {
    "darwin": "macOS: no menu entry is made here; start the app with `mycanvas-studio` "
              "(or add that command to the Dock through an Automator 'Run Shell Script' app).",
    "win32": "Windows: no Start menu entry is made here; pin `mycanvas-studio.exe` (in the "
             "Scripts folder of the environment the app is installed in) to Start.",
}


@command("desktop", "put the app in the desktop menu for this user, or take it out", lambda p: (
    p.add_argument("action", choices=["install", "uninstall"]),
))
def cmd_desktop(args: argparse.Namespace) -> int:
    if not sys.platform.startswith("linux"):
        key = "win32" if sys.platform == "win32" else "darwin"
        print(OTHER_PLATFORMS.get(key, f"{sys.platform}: no desktop integration"),
              file=sys.stderr)
        return EXIT_FAILED
    desktop = LinuxDesktop()
    if args.action == "install":
        for path in desktop.install(gui_launcher()):
            print(f"wrote {path}")
        print("MyCanvas Studio is in the applications menu; a project's catalogue.sqlite "
              "opens in it")
    else:
        removed = desktop.uninstall()
        for path in removed:
            print(f"removed {path}")
        if not removed:
            print("MyCanvas Studio was not in the applications menu")
    return EXIT_OK
