"""The main window: a project, its concepts on the left, the steps in the middle (Concepts →
Layouts → Dataset → Train → Generate), the jobs on the right, device/profile/job below.

The window appears before torch is imported: everything heavy runs in the engine's worker
process (device detection included), reached through the JobsBridge. The window's state lives
in an AppState; the views bind to it and reload the part of the project they show when its
revision changes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_app.concept_drop import paths_from_mime
from desktop_app.concepts_page import ConceptsPage
from desktop_app.concepts_view import ConceptList
from desktop_app.dataset_page import DatasetPage
from desktop_app.jobs_bridge import JobsBridge
from desktop_app.jobs_panel import JobsPanel
from desktop_app.layouts_page import LayoutsPage
from desktop_app.model_manager import ModelManager, test_models_warning
from desktop_app.observable import AppState, Bindings
from desktop_app.qt_compat import guard_none_refcount
from desktop_app.resume_bar import ResumeBar
from desktop_app.settings_dialog import SettingsDialog, load_settings_reporting
from desktop_app.thumbnails import BackgroundLoader
from engine.errors import MyCanvasError
from engine.jobs import TERMINAL_EVENTS, JobEvent, JobFailed, JobFinished
from engine.models.profiles import get_profile
from engine.settings import Settings, save_settings

APP_TITLE = "MyCanvas Studio"
STEPS = ("Concepts", "Layouts", "Dataset", "Train", "Generate")
LATER = "Training, generation and the gallery arrive in a later version of MyCanvas Studio."


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None) -> None:
        guard_none_refcount()  # before the window makes its first thousands of Qt calls
        super().__init__()
        warnings: list[str] = []
        if settings is None:
            settings, warnings = load_settings_reporting()
        self.state = AppState(settings, self)
        self.setWindowTitle(APP_TITLE)
        self.resize(1280, 800)
        self.setAcceptDrops(True)
        self._device_job = None  # events of a job arrive from inside submit(), so set it first
        self.jobs = JobsBridge(self)
        self.thumbs = BackgroundLoader(self)

        self.concepts = ConceptList(self.state, self.thumbs)
        self.concepts.files_dropped.connect(self.drop_files)
        left = QDockWidget("Concepts", self)
        left.setObjectName("conceptsDock")
        left.setWidget(self.concepts)
        left.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, left)

        self.concepts_page = ConceptsPage(self.state, self.jobs, self.thumbs)
        self.concepts_page.message.connect(self.show_message)
        self.layouts_page = LayoutsPage(self.state, self.jobs, self.thumbs)
        self.dataset_page = DatasetPage(self.state, self.jobs, self.thumbs)
        self.steps = QTabWidget()
        self.steps.setObjectName("steps")
        for widget, name in ((self.concepts_page, STEPS[0]), (self.layouts_page, STEPS[1]),
                             (self.dataset_page, STEPS[2])):
            self.steps.addTab(widget, f"{self.steps.count() + 1}. {name}")
        # Not built yet: shown so the path is clear, disabled so nothing pretends to work.
        for name in STEPS[3:]:
            later = QLabel(LATER)
            later.setAlignment(Qt.AlignmentFlag.AlignCenter)
            index = self.steps.addTab(later, f"{self.steps.count() + 1}. {name}")
            self.steps.setTabEnabled(index, False)
            self.steps.setTabToolTip(index, LATER)
        self.resume_bar = ResumeBar()
        self.resume_bar.resume_requested.connect(self._resume_job)
        self.resume_bar.dismiss_requested.connect(
            lambda entry: self._settle_interrupted(entry, "dismissed"))
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.resume_bar)
        column.addWidget(self.steps, 1)
        self.setCentralWidget(central)

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
        self.jobs_dock = dock
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.resizeDocks([left, dock], [250, 290], Qt.Orientation.Horizontal)

        self.device_label = QLabel()
        self.profile_label = QLabel()
        self.profile_label.setObjectName("profileLabel")
        self.job_label = QLabel()
        self.job_label.setObjectName("runningJob")
        self.statusBar().addPermanentWidget(self.job_label)
        self.statusBar().addPermanentWidget(self.device_label)
        self.statusBar().addPermanentWidget(self.profile_label)
        self.jobs.status_changed.connect(lambda text: setattr(self.state, "running_job", text))

        self.settings_dialog: SettingsDialog | None = None
        self.model_manager = ModelManager(self.state, self.jobs, self)
        self._build_menu()
        self.bindings = Bindings()
        self.bindings.bind(self.state, "settings", self._show_profile)
        self.bindings.bind(self.state, "project", self._show_project)
        self.bindings.bind(self.state, "device", lambda d: self.device_label.setText(
            f"device: {d}"))
        self.bindings.bind(self.state, "running_job", lambda text: self.job_label.setText(
            f"▶ {text}" if text else "no job running"))
        self._device_job = self.jobs.submit("device-info", {"requested": settings.device},
                                            "Detect device")
        for warning in warnings:
            self.show_message(warning, 20000)

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def project(self):
        return self.state.project

    # ------------------------------------------------------------ menus and actions

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&Project")
        menu.addAction("&New…", self.new_project).setShortcut("Ctrl+N")
        menu.addAction("&Open…", self.open_project_dialog).setShortcut("Ctrl+O")
        self.recent_menu = menu.addMenu("Open &recent")
        self._fill_recent()
        menu.addSeparator()
        menu.addAction("&Quit", self.close).setShortcut("Ctrl+Q")
        view = self.menuBar().addMenu("&View")
        view.addAction(self.jobs_dock.toggleViewAction())
        tools = self.menuBar().addMenu("&Settings")
        tools.addAction("&Settings…", self.open_settings).setShortcut("Ctrl+,")
        tools.addAction("&Models…", self.model_manager.show)

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

    def create_project(self, folder: Path) -> None:
        self._open(folder, create=True)

    def _open(self, folder: Path, create: bool) -> None:
        from engine.project import Project

        try:
            project = Project.create(folder, folder.name) if create else Project.open(folder)
        except MyCanvasError as exc:
            if not create and "is damaged" in str(exc):
                self._offer_repair(folder, str(exc))
            else:
                QMessageBox.warning(self, APP_TITLE, str(exc))
            return
        old = self.state.project
        if project is old:
            # Opened again (the engine hands back the live instance): keep one reference and
            # make every view read the project afresh, which is what the user asked for.
            project.close()
            self.state.touch("concepts", "photos", "layouts", "dataset")
        else:
            self.state.selected_concept = None
            self.state.project = project
            if old is not None:
                old.close()
        settings = replace(self.settings, recent_projects=list(self.settings.recent_projects))
        settings.add_recent(folder)
        self.state.settings = settings
        try:
            save_settings(settings)
        except (OSError, MyCanvasError) as exc:
            self.show_message(f"Could not save settings: {exc}")
        self._fill_recent()
        self.steps.setCurrentIndex(0)
        self._show_interrupted_jobs()

    # ------------------------------------------------------------ repair and resume

    def _offer_repair(self, folder: Path, reason: str) -> None:
        answer = QMessageBox.question(
            self, APP_TITLE,
            f"{reason}\n\nRepair it? The damaged catalogue is kept beside the new one, and "
            "you will see what was saved and what was lost.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return

        def done(event: JobEvent) -> None:
            if isinstance(event, JobFinished):
                QMessageBox.information(self, APP_TITLE, event.result.summary())
                self._open(folder, create=False)
            elif isinstance(event, JobFailed):
                QMessageBox.warning(self, APP_TITLE, f"The repair failed: {event.reason}")

        self.jobs.submit("repair-project", {"project": str(folder)},
                         f"Repair {folder.name}", on_event=done)

    def _show_interrupted_jobs(self) -> None:
        project = self.state.project
        try:
            entries = project.interrupted_jobs() if project is not None else []
        except MyCanvasError as exc:
            self.show_message(f"Could not read the job journal: {exc}")
            entries = []
        self.resume_bar.show_entries(entries)

    def _settle_interrupted(self, entry, state: str) -> None:
        project = self.state.project
        if project is None:
            return
        try:
            project.settle_interrupted(entry.job_id, state)
        except MyCanvasError as exc:
            self.show_message(str(exc))

    def _resume_job(self, entry) -> None:
        def refresh(event: JobEvent) -> None:
            if isinstance(event, TERMINAL_EVENTS):
                self.state.touch("concepts", "photos", "layouts", "dataset")

        try:
            self.jobs.submit(entry.name, entry.resume_params, entry.title or entry.name,
                             on_event=refresh)
        except MyCanvasError as exc:
            self.show_message(f"Could not resume: {exc}")
            return
        self._settle_interrupted(entry, "resumed")

    def open_settings(self) -> None:
        self.settings_dialog = SettingsDialog(self.settings, self)
        self.settings_dialog.accepted.connect(self._settings_saved)
        self.settings_dialog.open()

    def _settings_saved(self) -> None:
        dialog = self.settings_dialog
        if dialog is None or dialog.saved is None:
            return
        device_changed = dialog.saved.device != self.settings.device
        self.state.settings = dialog.saved
        if device_changed:
            self._detect_device()

    def _detect_device(self) -> None:
        self.state.device = "detecting…"
        self._device_job = self.jobs.submit("device-info", {"requested": self.settings.device},
                                            "Detect device")

    def show_message(self, text: str, msecs: int = 10000) -> None:
        self.statusBar().showMessage(text, msecs)

    # ------------------------------------------------------------ drops

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = paths_from_mime(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.drop_files(paths, None)

    def drop_files(self, paths: list[Path], concept_id: int | None) -> None:
        """Dropped on a concept: added to it. Anywhere else: a new concept."""
        self.steps.setCurrentWidget(self.concepts_page)
        self.concepts_page.handle_drop(paths, concept_id)

    # ------------------------------------------------------------ view updates

    def _show_profile(self, settings: Settings) -> None:
        prof = get_profile(settings.profile or None)
        warn = "  ⚠ TEST MODELS: pictures are noise" if prof.test_models else ""
        self.profile_label.setText(f"profile: {prof.label}{warn}")
        self.profile_label.setToolTip(test_models_warning(prof.name) or prof.description)
        self.profile_label.setStyleSheet("color: #8a5a00; font-weight: bold" if warn else "")

    def _show_project(self, project) -> None:
        if project is None:
            self.setWindowTitle(APP_TITLE)
            return
        self.setWindowTitle(f"{project.name} — {APP_TITLE}")

    def _on_job_event(self, event: JobEvent) -> None:
        if self._device_job is None or event.job_id != self._device_job.job_id:
            return
        if isinstance(event, JobFinished):
            self.state.device = str(event.result)
        elif isinstance(event, JobFailed):
            self.state.device = "unknown"
            self.show_message(event.reason)

    def ask_before_quit(self, titles: list[str]) -> bool:
        """Whether to quit although jobs are running (tests replace this question)."""
        listed = "\n".join(f"• {t}" for t in titles[:5])
        answer = QMessageBox.question(
            self, APP_TITLE,
            f"These jobs are still running:\n{listed}\n\nQuit anyway? They stop now; when "
            "you open the project again you can resume them where they stopped.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event) -> None:
        titles = [t for t in self.jobs.unfinished_titles() if t != "Detect device"]
        if titles and not self.ask_before_quit(titles):
            event.ignore()
            return
        for view in (self.concepts, self.concepts_page, self.layouts_page, self.dataset_page,
                     self.model_manager):
            view.teardown()
        self.bindings.clear()
        self.thumbs.shutdown()
        self.jobs.shutdown(interrupted=bool(titles))
        if self.state.project is not None:
            self.state.project.close()
            self.state.project = None
        super().closeEvent(event)
