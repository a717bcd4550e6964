"""The main window: open or create a project, see its concepts, follow jobs.

The window appears before torch is imported: everything heavy runs in the engine's worker
process (device detection included), reached through the JobsBridge.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QScrollArea,
)

from desktop_app.jobs_bridge import JobsBridge
from desktop_app.jobs_panel import JobsPanel
from engine.errors import MyCanvasError
from engine.jobs import JobEvent, JobFailed, JobFinished
from engine.models.profiles import get_profile
from engine.settings import Settings, load_settings, save_settings

APP_TITLE = "MyCanvas Studio"


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or load_settings()
        self.project = None
        self.setWindowTitle(APP_TITLE)
        self.resize(1100, 720)

        self.concepts = QListWidget()
        self.concepts.setObjectName("conceptList")
        left = QDockWidget("Concepts", self)
        left.setObjectName("conceptsDock")
        left.setWidget(self.concepts)
        left.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, left)

        self.summary = QLabel()
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.summary.setMargin(16)
        self.setCentralWidget(self.summary)

        self._device_job = None  # events of a job arrive from inside submit(), so set it first
        self.jobs = JobsBridge(self)
        self.jobs_panel = JobsPanel()
        self.jobs_panel.cancel_requested.connect(self.jobs.cancel)
        self.jobs.event.connect(self.jobs_panel.on_event)
        self.jobs.event.connect(self._on_job_event)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.jobs_panel)
        dock = QDockWidget("Jobs", self)
        dock.setObjectName("jobsDock")
        dock.setWidget(scroll)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)

        self.device_label = QLabel("device: detecting…")
        self.profile_label = QLabel()
        self.statusBar().addPermanentWidget(self.device_label)
        self.statusBar().addPermanentWidget(self.profile_label)
        self._show_profile()
        self._build_menu()
        self._device_job = self.jobs.submit("device-info", {"requested": self.settings.device},
                                            "Detect device")
        self._refresh()

    # ------------------------------------------------------------ menus and actions

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&Project")
        menu.addAction("&New…", self.new_project).setShortcut("Ctrl+N")
        menu.addAction("&Open…", self.open_project_dialog).setShortcut("Ctrl+O")
        self.recent_menu = menu.addMenu("Open &recent")
        self._fill_recent()
        menu.addSeparator()
        menu.addAction("&Quit", self.close).setShortcut("Ctrl+Q")

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent_projects:
            self.recent_menu.addAction(path, lambda p=path: self.open_project(Path(p)))
        self.recent_menu.setEnabled(bool(self.settings.recent_projects))

    def new_project(self) -> None:
        folder = QFileDialog.getSaveFileName(self, "New project folder")[0]
        if folder:
            self._open(Path(folder), create=True)

    def open_project_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open project folder")
        if folder:
            self.open_project(Path(folder))

    def open_project(self, folder: Path) -> None:
        self._open(folder, create=False)

    def _open(self, folder: Path, create: bool) -> None:
        from engine.project import Project

        try:
            project = Project.create(folder, folder.name) if create else Project.open(folder)
        except MyCanvasError as exc:
            QMessageBox.warning(self, APP_TITLE, str(exc))
            return
        if self.project is not None:
            self.project.close()
        self.project = project
        self.settings.add_recent(folder)
        try:
            save_settings(self.settings)
        except (OSError, MyCanvasError) as exc:
            self.statusBar().showMessage(f"Could not save settings: {exc}", 8000)
        self._fill_recent()
        self._refresh()

    # ------------------------------------------------------------ view updates

    def _show_profile(self) -> None:
        prof = get_profile(self.settings.profile or None)
        warn = "  ⚠ TEST MODELS: pictures are noise" if prof.test_models else ""
        self.profile_label.setText(f"profile: {prof.label}{warn}")

    def _refresh(self) -> None:
        self.concepts.clear()
        if self.project is None:
            self.setWindowTitle(APP_TITLE)
            self.summary.setText("Open or create a project (Project menu) to begin.")
            return
        name = self.project.meta("name") or self.project.root.name
        self.setWindowTitle(f"{name} — {APP_TITLE}")
        for c in self.project.concepts():
            self.concepts.addItem(f"{c.name}  {c.token}  ({c.class_word})")
        lines = [f"<h2>{name}</h2>", f"<p>{self.project.root}</p>"]
        lines += [f"<div>{k}: {v}</div>" for k, v in self.project.summary().items()]
        self.summary.setText("".join(lines))

    def _on_job_event(self, event: JobEvent) -> None:
        if self._device_job is None or event.job_id != self._device_job.job_id:
            return
        if isinstance(event, JobFinished):
            self.device_label.setText(f"device: {event.result}")
        elif isinstance(event, JobFailed):
            self.device_label.setText("device: unknown")
            self.statusBar().showMessage(event.reason, 10000)

    def closeEvent(self, event) -> None:
        self.jobs.shutdown()
        if self.project is not None:
            self.project.close()
        super().closeEvent(event)


def run_app(argv: list[str]) -> int:
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    app.setApplicationName(APP_TITLE)
    window = MainWindow()
    window.show()
    if argv and Path(argv[0]).is_dir():
        window.open_project(Path(argv[0]))
    return app.exec()
