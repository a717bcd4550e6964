"""The main window: a project, its concepts on the left, the steps in the middle (Concepts →
Layouts → Dataset → Train → Generate → Gallery; Extract beside Train: another way to a run, from
one photo, without layouts or a dataset), the jobs on the right, device/profile/job below. With
no project open, the start page (new, open, recent, the sample project) is in the middle.
A step whose models are missing says so above it (ModelsBanner).

The window appears before torch is imported: everything heavy runs in the engine's worker
process (device detection included), reached through the JobsBridge. The window's state lives
in an AppState; the views bind to it and reload the part of the project they show when its
revision changes: when the window changes it, when a job of the window changes it (the
bridge), or when another process does (the ProjectWatcher).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_app.pages.concepts_page import ConceptsPage
from desktop_app.pages.dataset_page import DatasetPage
from desktop_app.pages.extract_page import ExtractPage
from desktop_app.pages.gallery_page import GalleryPage
from desktop_app.pages.generate_page import GeneratePage
from desktop_app.pages.layouts_page import LayoutsPage
from desktop_app.pages.model_manager import ModelManager, test_models_warning
from desktop_app.pages.settings_dialog import SettingsDialog, load_settings_reporting
from desktop_app.pages.start_page import SAMPLE_CONCEPTS, StartPage, sample_project_folder
from desktop_app.pages.train_page import TrainPage
from desktop_app.qt_compat import guard_none_refcount
from desktop_app.state.jobs_bridge import JobsBridge
from desktop_app.state.observable import AppState, Bindings
from desktop_app.state.project_view import read_view, remember_view
from desktop_app.state.project_watch import ProjectWatcher
from desktop_app.state.thumbnails import BackgroundLoader
from desktop_app.widgets.concept_drop import accept_as_copy, paths_from_mime
from desktop_app.widgets.concepts_view import ConceptList
from desktop_app.widgets.confirm import ask
from desktop_app.widgets.jobs_panel import JobsPanel
from desktop_app.widgets.models_banner import ModelsBanner
from desktop_app.widgets.personalize_bar import PersonalizeBar
from desktop_app.widgets.resume_bar import InterruptedJobs, ResumeBar
from engine.errors import MyCanvasError
from engine.jobs import JobDeclaration, JobEvent, JobFailed, JobFinished
from engine.models.profiles import get_profile
from engine.settings import Settings, save_settings

APP_TITLE = "MyCanvas Studio"
STEPS = ("Concepts", "Layouts", "Dataset", "Train", "Extract", "Generate", "Gallery")
TAB_TEXT = {"Extract": "4b. Extract", "Generate": "5. Generate", "Gallery": "6. Gallery"}
EXTRACT_TIP = ("Another way to a run: learn several concepts and their masks from ONE photo "
               "where they appear together, without layouts or a dataset")


def short_device(described: str) -> str:
    """'cpu (float32 weights, bfloat16 compute on amx_bf16, 15.0 GiB free; savers: none)'
    -> 'cpu, bf16 compute'; 'cuda (float16, 7.5 GiB free; ...)' -> 'cuda, float16'."""
    device, _, rest = described.partition(" (")
    if "bfloat16 compute" in rest:
        return f"{device}, bf16 compute"
    precision = rest.split(",")[0].split(";")[0].split(":")[0].rstrip(")").strip()
    return f"{device}, {precision}" if precision else device


STATUS_LABEL_WIDTH = 240  # pixels, at most, of each permanent label of the status bar


def _set_elided(label: QLabel, text: str) -> None:
    """`text` in `label`, cut with "…" to the label's maximum width; when cut, the tooltip
    shows all of it (a caller with its own tooltip sets it after)."""
    shown = label.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight,
                                           label.maximumWidth())
    label.setText(shown)
    label.setToolTip(text if shown != text else "")


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
        self.float32_cost = ""  # the device-info job's line, for the settings
        self.jobs = JobsBridge(self)
        self.thumbs = BackgroundLoader(self)
        self.watcher = ProjectWatcher(self.state, self)
        self.jobs.data_changed.connect(self.watcher.announce)

        self.concepts = ConceptList(self.state, self.thumbs)
        self.concepts.files_dropped.connect(self.drop_files)
        left = QDockWidget("Concepts", self)
        left.setObjectName("conceptsDock")
        left.setWidget(self.concepts)
        left.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        self.concepts_dock = left
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, left)

        self.concepts_page = ConceptsPage(self.state, self.jobs, self.thumbs)
        self.concepts_page.message.connect(self.show_message)
        self.layouts_page = LayoutsPage(self.state, self.jobs, self.thumbs)
        self.dataset_page = DatasetPage(self.state, self.jobs, self.thumbs)
        self.train_page = TrainPage(self.state, self.jobs, self.thumbs)
        self.extract_page = ExtractPage(self.state, self.jobs, self.thumbs)
        self.generate_page = GeneratePage(self.state, self.jobs)
        self.gallery_page = GalleryPage(self.state, self.jobs, self.thumbs)
        self.gallery_page.recipe_chosen.connect(self.use_recipe)
        self.pages = (self.concepts_page, self.layouts_page, self.dataset_page, self.train_page,
                      self.extract_page, self.generate_page, self.gallery_page)
        self.steps = QTabWidget()
        self.steps.setObjectName("steps")
        for number, (widget, name) in enumerate(zip(self.pages, STEPS, strict=True), 1):
            self.steps.addTab(widget, TAB_TEXT.get(name, f"{number}. {name}"))
        self.steps.setTabToolTip(STEPS.index("Extract"), EXTRACT_TIP)
        self.banner = ModelsBanner(self.state, self.thumbs)
        self.steps.currentChanged.connect(self._step_shown)
        self.resume_bar = ResumeBar()
        self.personalize = PersonalizeBar(self.state, self.jobs)
        self.personalize.finished.connect(
            lambda _r: self.steps.setCurrentWidget(self.gallery_page))
        self.personalize.preset.currentIndexChanged.connect(lambda _i: self._remember_view())
        self._restoring_view = False  # while a project opens: what shows is not its choice
        project_view = QWidget()
        column = QVBoxLayout(project_view)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.personalize)
        column.addWidget(self.resume_bar)
        column.addWidget(self.banner)
        column.addWidget(self.steps, 1)
        self.start_page = StartPage()
        self.start_page.new_requested.connect(self.new_project)
        self.start_page.open_requested.connect(self.open_project_dialog)
        self.start_page.recent_chosen.connect(self.open_project)
        self.start_page.sample_requested.connect(self.open_sample_project)
        self.central = QStackedWidget()
        self.central.addWidget(self.start_page)
        self.central.addWidget(project_view)
        self.project_view = project_view
        self.setCentralWidget(self.central)

        self.jobs_panel = JobsPanel()
        self.jobs_panel.cancel_requested.connect(self.jobs.cancel)
        self.jobs_panel.models_requested.connect(self.show_models)
        self.jobs.event.connect(self.jobs_panel.on_event)
        self.jobs.job_added.connect(self.jobs_panel.track)
        self.jobs.event.connect(self._on_job_event)
        self.interrupted = InterruptedJobs(self.state, self.jobs, self.resume_bar,
                                           self.jobs_panel, self)
        self.interrupted.message.connect(self.show_message)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        # Rows wrap to the dock's width: a horizontal scroll would hide Cancel off the side.
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.jobs_panel)
        dock = QDockWidget("Jobs", self)
        dock.setObjectName("jobsDock")
        dock.setWidget(scroll)
        self.jobs_dock = dock
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self._docks_sized = False  # sized when first shown: before, the sizes are lost

        self.device_label = QLabel()
        self.profile_label = QLabel()
        self.profile_label.setObjectName("profileLabel")
        self.job_label = QLabel()
        self.job_label.setObjectName("runningJob")
        # The permanent labels stay short (the rest in their tooltips): the status messages
        # share the bar with them and would be cut off.
        # (The profile label is short and never cut: it carries the test-models warning.)
        for label in (self.job_label, self.device_label):
            label.setMaximumWidth(STATUS_LABEL_WIDTH)
        self.statusBar().addPermanentWidget(self.job_label)
        self.statusBar().addPermanentWidget(self.device_label)
        self.statusBar().addPermanentWidget(self.profile_label)
        self.jobs.status_changed.connect(lambda text: setattr(self.state, "running_job", text))

        self.settings_dialog: SettingsDialog | None = None
        self.model_manager = ModelManager(self.state, self.jobs, self)
        self.banner.models_requested.connect(self.show_models)
        self.model_manager.finished.connect(lambda _r: self.banner.refresh())
        self._build_menu()
        self.bindings = Bindings()
        self.bindings.bind(self.state, "settings", self._show_profile)
        self.bindings.bind(self.state, "project", self._show_project)
        self.bindings.bind(self.state, "device", self._show_device)
        self.bindings.bind(self.state, "running_job", lambda text: _set_elided(
            self.job_label, f"▶ {text}" if text else "no job running"))
        self._device_job = self.jobs.submit("device-info", {"requested": settings.device},
                                            "Detect the device")
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
        menu.addAction("Open the &sample project", self.open_sample_project)
        self._fill_recent()
        menu.addSeparator()
        menu.addAction("&Quit", self.close).setShortcut("Ctrl+Q")
        concept = self.menuBar().addMenu("&Concept")
        self.new_concept_action = concept.addAction(
            "&New concept from photos…", self.concepts_page.new_concept_from_photos)
        self.new_concept_action.setShortcut("Ctrl+I")
        self.paste_action = concept.addAction("&Paste photos", self.paste_photos)
        self.paste_action.setShortcut(QKeySequence.StandardKey.Paste)
        self.paste_action.setToolTip("Into the concept on show; a new concept when none is")
        self.paste_new_action = concept.addAction(
            "New concept from &pasted photos", lambda: self.concepts_page.paste(None))
        self.paste_new_action.setShortcut("Ctrl+Shift+V")
        self.project_actions = [self.new_concept_action, self.paste_action,
                                self.paste_new_action]
        # The same ways in from the concept list's context menu.
        self.concepts.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.concepts.addActions([self.new_concept_action, self.paste_new_action])
        view = self.menuBar().addMenu("&View")
        view.addAction(self.jobs_dock.toggleViewAction())
        tools = self.menuBar().addMenu("&Settings")
        tools.addAction("&Settings…", self.open_settings).setShortcut("Ctrl+,")
        tools.addAction("&Models…", self.show_models)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent_projects:
            self.recent_menu.addAction(path, lambda p=path: self.open_project(Path(p)))
        self.recent_menu.setEnabled(bool(self.settings.recent_projects))
        self.start_page.show_recent(self.settings.recent_projects)

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

    def open_sample_project(self) -> None:
        """The sample project: made once from the bundled photos (imported and segmented by
        the usual jobs), opened again after that."""
        folder = sample_project_folder()
        if (folder / "catalogue.sqlite").is_file():
            self.open_project(folder)
            return
        if not self._open(folder, create=True):
            return
        for sample in SAMPLE_CONCEPTS:
            self.concepts_page.import_new(sample.name, sample.token, sample.class_word,
                                          [sample.photo])
        self.show_message(f"The sample project is in {folder}: its photos are being imported "
                          "(see Jobs).", 20000)

    def _open(self, folder: Path, create: bool) -> bool:
        from engine.project import Project

        try:
            project = Project.create(folder, folder.name) if create else Project.open(folder)
        except MyCanvasError as exc:
            if not create and "is damaged" in str(exc):
                self._offer_repair(folder, str(exc))
            else:
                QMessageBox.warning(self, APP_TITLE, str(exc))
            return False
        old = self.state.project
        if project is old:
            # Opened again (the engine hands back the live instance): keep one reference and
            # make every view read the project afresh, which is what the user asked for.
            project.close()
            self.state.touch(*JobDeclaration.KINDS)
        else:
            self.state.selected_concept = None
            self._restoring_view = True  # the old project's step is not the new one's choice
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
        self._restore_view()
        self.interrupted.show()
        return True

    def _restore_view(self) -> None:
        """The step and Personalize preset this project was last shown with."""
        view = read_view(self.state.project)
        step = view.get("step", "")
        preset = self.personalize.preset.findData(view.get("preset", ""))
        self._restoring_view = True
        self.steps.setCurrentIndex(STEPS.index(step) if step in STEPS else 0)
        self.personalize.preset.setCurrentIndex(max(0, preset))
        self._restoring_view = False
        self._remember_view()

    def _remember_view(self) -> None:
        if self._restoring_view or self.state.project is None:
            return
        index = self.steps.currentIndex()
        remember_view(self.state.project, step=STEPS[index] if 0 <= index < len(STEPS) else "",
                      preset=str(self.personalize.preset.currentData() or ""))

    def paste_photos(self) -> None:
        """Ctrl+V: photos from the clipboard join the concept on show, else a new one."""
        self.steps.setCurrentWidget(self.concepts_page)
        page = self.concepts_page.page
        self.concepts_page.paste(page.concept_id if page.isVisible() else None)

    # ------------------------------------------------------------ repair and resume

    def _offer_repair(self, folder: Path, reason: str) -> None:
        if not ask(self, APP_TITLE,
                   f"{reason}\n\nRepair it? The damaged catalogue is kept beside the new one, "
                   "and you will see what was saved and what was lost."):
            return

        def done(event: JobEvent) -> None:
            if isinstance(event, JobFinished):
                QMessageBox.information(self, APP_TITLE, event.result.summary())
                self._open(folder, create=False)
            elif isinstance(event, JobFailed):
                QMessageBox.warning(self, APP_TITLE, f"The repair failed: {event.reason}")

        self.jobs.submit("repair-project", {"project": str(folder)},
                         f"Repair {folder.name}", on_event=done)

    def open_settings(self) -> None:
        self.settings_dialog = SettingsDialog(self.settings, self, self.float32_cost)
        self.settings_dialog.accepted.connect(self._settings_saved)
        self.settings_dialog.open()

    def show_models(self) -> None:
        self.model_manager.show()
        self.model_manager.raise_()

    def _step_shown(self, index: int) -> None:
        self.banner.show_for(STEPS[index] if 0 <= index < len(STEPS) else "")
        self._remember_view()

    def use_recipe(self, settings: dict, fields: set) -> None:
        """The Gallery's "use this recipe": only the chosen fields, on the Generate step."""
        self.generate_page.apply_recipe(settings, fields)
        self.steps.setCurrentWidget(self.generate_page)

    def _settings_saved(self) -> None:
        dialog = self.settings_dialog
        if dialog is None or dialog.saved is None:
            return
        device_changed = (dialog.saved.device, dialog.saved.precision) != (
            self.settings.device, self.settings.precision)
        self.state.settings = dialog.saved
        if device_changed:
            self._detect_device()

    def _detect_device(self) -> None:
        self.state.device = "detecting…"
        self._device_job = self.jobs.submit("device-info", {"requested": self.settings.device},
                                            "Detect the device")

    def show_message(self, text: str, msecs: int = 10000) -> None:
        self.statusBar().showMessage(text, msecs)
        self.statusBar().setToolTip(text)  # all of it, should the bar still cut it

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._size_docks_once()

    def _size_docks_once(self) -> None:
        """The docks' widths, once both are on screen (sizes given before are lost, and the
        docks stay at their narrowest: the jobs cut, the names truncated)."""
        if not self._docks_sized and self.isVisible() and self.concepts_dock.isVisible():
            self._docks_sized = True
            self.resizeDocks([self.concepts_dock, self.jobs_dock], [250, 290],
                             Qt.Orientation.Horizontal)

    # ------------------------------------------------------------ drops

    def dragEnterEvent(self, event) -> None:
        accept_as_copy(event)

    def dragMoveEvent(self, event) -> None:
        accept_as_copy(event)

    def dropEvent(self, event) -> None:
        paths = paths_from_mime(event.mimeData())
        if paths and accept_as_copy(event):
            self.drop_files(paths, None)

    def drop_files(self, paths: list[Path], concept_id: int | None) -> None:
        """Dropped on a concept: added to it. Anywhere else: a new concept."""
        self.steps.setCurrentWidget(self.concepts_page)
        self.concepts_page.handle_drop(paths, concept_id)

    # ------------------------------------------------------------ view updates

    def _show_profile(self, settings: Settings) -> None:
        prof = get_profile(settings.profile or None)
        warn = "  ⚠ TEST MODELS" if prof.test_models else ""  # the tooltip says what that means
        self.profile_label.setText(f"profile: {prof.label}{warn}")
        self.profile_label.setToolTip(test_models_warning(prof.name) or prof.description)
        self.profile_label.setStyleSheet("color: #8a5a00; font-weight: bold" if warn else "")

    def _show_device(self, described: str) -> None:
        # The full description (memory, savers) is long: it would push the status messages
        # under the permanent labels. The label says device and precision; the tooltip all.
        self.device_label.setText(f"device: {short_device(described)}")
        self.device_label.setToolTip(described)

    def _show_project(self, project) -> None:
        self.central.setCurrentWidget(self.start_page if project is None else self.project_view)
        self.concepts_dock.setVisible(project is not None)
        self._size_docks_once()
        for action in self.project_actions:
            action.setEnabled(project is not None)
        if project is None:
            self.setWindowTitle(APP_TITLE)
            return
        self.setWindowTitle(f"{project.name} — {APP_TITLE}")
        self._step_shown(self.steps.currentIndex())

    def _on_job_event(self, event: JobEvent) -> None:
        if self._device_job is None or event.job_id != self._device_job.job_id:
            return
        if isinstance(event, JobFinished):
            self.state.device = str(event.result)
            self.float32_cost = getattr(event.result, "float32_cost", "")
        elif isinstance(event, JobFailed):
            self.state.device = "unknown"
            self.show_message(event.reason)

    def ask_before_quit(self, titles: list[str]) -> bool:
        """Whether to quit although jobs are running (tests replace this question)."""
        listed = "\n".join(f"• {t}" for t in titles[:5])
        return ask(self, APP_TITLE,
                   f"These jobs are still running:\n{listed}\n\nQuit anyway? They stop now; "
                   "when you open the project again you can resume them where they stopped.")

    def closeEvent(self, event) -> None:
        titles = [t for t in self.jobs.unfinished_titles() if t != "Detect the device"]
        if titles and not self.ask_before_quit(titles):
            event.ignore()
            return
        self.watcher.stop()
        for view in (self.concepts, *self.pages, self.banner, self.model_manager):
            view.teardown()
        self.bindings.clear()
        self.thumbs.shutdown()
        self.jobs.shutdown(interrupted=bool(titles))
        if self.state.project is not None:
            self.state.project.close()
            self.state.project = None
        super().closeEvent(event)
