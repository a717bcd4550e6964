"""Start the desktop app: a QApplication and the main window.

With MYCANVAS_STARTUP_PROBE set, the app prints `window-shown <unix time>` on stdout the
moment the window is first exposed (the start-up benchmark reads it); with the value "exit" it
then quits.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from desktop_app.main_window import APP_TITLE, MainWindow
from engine.paths import RESOURCES
from engine.project import CATALOGUE_NAME

APP_ICON = RESOURCES / "icons" / "mycanvas-studio.svg"

__all__ = ["APP_TITLE", "MainWindow", "run_app"]


class StartupProbe(QObject):
    """Reports when the window is first on screen."""

    def __init__(self, window: MainWindow, quit_after: bool) -> None:
        super().__init__(window)
        self.quit_after = quit_after
        self.reported = False
        handle = window.windowHandle()
        if handle is not None:
            handle.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if not self.reported and event.type() == QEvent.Type.Expose and watched.isExposed():
            self.reported = True
            print(f"window-shown {time.time():.6f}", flush=True)
            if self.quit_after:
                QTimer.singleShot(0, watched, QApplication.quit)
        return False


def project_argument(argv: list[str]) -> Path | None:
    """The project folder named on the command line: a folder, or a project's catalogue file
    (what a file manager passes when a project is opened through its MIME type)."""
    if not argv:
        return None
    path = Path(argv[0])
    if path.is_file() and path.name == CATALOGUE_NAME:
        return path.parent
    return path if path.is_dir() else None


def run_app(argv: list[str]) -> int:
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    app.setApplicationName(APP_TITLE)
    app.setDesktopFileName("mycanvas-studio")  # Wayland matches the window to its entry
    app.setWindowIcon(QIcon(str(APP_ICON)))
    window = MainWindow()
    probe = os.environ.get("MYCANVAS_STARTUP_PROBE")
    if probe:
        window.create()  # a native window to watch before it is shown
        StartupProbe(window, quit_after=probe == "exit")
    window.show()
    project = project_argument(argv)
    if project is not None:
        window.open_project(project)
    code = app.exec()
    window.close()
    return code
