"""The `mycanvas` console command: no arguments opens the window, anything else is the CLI.

Kept free of Qt and torch imports so `mycanvas --help` and every CLI command start fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

# Qt platforms that draw without a display server (tests, screenshots, framebuffers).
NO_DISPLAY_NEEDED = frozenset({"offscreen", "minimal", "vnc", "linuxfb", "eglfs", "vkkhrdisplay"})
EXIT_NO_DISPLAY = 2


def missing_display(environ: Mapping[str, str] = os.environ,
                    platform: str = sys.platform) -> bool:
    """True on a Linux machine where the window could not open: no X11 or Wayland display,
    and no Qt platform that works without one (Qt would abort with a long message)."""
    if not platform.startswith("linux"):
        return False
    qpa = environ.get("QT_QPA_PLATFORM", "").split(":", 1)[0].strip().lower()
    if qpa in NO_DISPLAY_NEEDED:
        return False
    return not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"gui", "open"}:
        if missing_display():
            print("mycanvas: there is no display here (DISPLAY and WAYLAND_DISPLAY are not "
                  "set), so the window cannot open; the command line does everything the "
                  "window does: `mycanvas --help` lists the commands, e.g. `mycanvas "
                  "personalize PROJECT`.", file=sys.stderr)
            return EXIT_NO_DISPLAY
        from desktop_app.app import run_app

        return run_app(args[1:] if args else [])
    from engine.cli import main as cli_main

    return cli_main(args)


def gui_main(argv: Sequence[str] | None = None) -> int:
    """`mycanvas-studio [PROJECT]`: the window only, what the desktop menu entry starts (a GUI
    script: no console window on Windows). PROJECT may be a project folder or its catalogue."""
    args = list(sys.argv[1:] if argv is None else argv)
    return main(["gui", *args])


if __name__ == "__main__":
    sys.exit(main())
