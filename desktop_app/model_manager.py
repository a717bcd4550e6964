"""The model manager: which roles of a profile are on this computer, and getting the missing
ones (job "ensure-models": tiny models are built, the planner GGUF assembled, the rest
downloaded) with progress and cancel. It says plainly when the tiny test models are in use.

Looking the roles up touches the Hugging Face cache (and imports huggingface_hub), so it runs
off the GUI thread.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_app.jobs_bridge import JobsBridge
from desktop_app.jobs_panel import eta_text
from desktop_app.observable import AppState, Bindings
from desktop_app.thumbnails import BackgroundLoader
from engine.errors import MyCanvasError
from engine.jobs import JobCancelled, JobEvent, JobFailed, JobFinished, JobProgress
from engine.models.profiles import get_profile, profile_names

PRESENT, LATER, MISSING = QColor(27, 125, 58), QColor(138, 90, 0), QColor(179, 38, 30)


def role_statuses(profile: str, overrides: dict[str, str]) -> list[Any]:
    from engine.models.profiles import role_names, role_status

    prof = get_profile(profile)
    return [role_status(prof, role, overrides) for role in role_names()]


def test_models_warning(profile_name: str | None) -> str:
    profile = get_profile(profile_name or None)
    if not profile.test_models:
        return ""
    return (f"⚠ The app is running on the “{profile.label}” profile: every stage runs, but "
            "the pictures are noise. Choose a real profile (e.g. sd15) in Settings for real "
            "pictures.")


class ModelManager(QDialog):
    def __init__(self, state: AppState, jobs: JobsBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelManager")
        self.setWindowTitle("Models")
        self.resize(760, 380)
        self.state, self.jobs = state, jobs
        self.loader = BackgroundLoader(self)
        self.loader.ready.connect(self._statuses_ready)
        self.loader.failed.connect(lambda _k, error: self.status.setText(error))
        self.job: str | None = None
        self.outcome = ""  # how the last download ended, shown with the statuses
        self._request = 0
        self.missing: list[str] = []
        self.profile = QComboBox()
        for name in profile_names():
            self.profile.addItem(f"{get_profile(name).label} ({name})", name)
        self.profile.currentIndexChanged.connect(self._profile_chosen)
        self.warning = QLabel()
        self.warning.setObjectName("testModelsWarning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("background: #fff4d6; color: #6b4e00; padding: 6px")
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("roleTable")
        self.table.setHorizontalHeaderLabels(["Role", "Status", "Source", "Note"])
        header = self.table.horizontalHeader()
        for column in (0, 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        for column in (2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.bar = QProgressBar()
        self.bar.hide()
        self.status = QLabel()
        self.status.setObjectName("modelStatus")
        self.status.setWordWrap(True)
        self.fetch = QPushButton("Get the missing models")
        self.fetch.setObjectName("fetchModels")
        self.fetch.clicked.connect(self.fetch_missing)
        self.cancel = QPushButton("Cancel download")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(lambda: self.job and self.jobs.cancel(self.job))
        close = QPushButton("Close")
        close.clicked.connect(self.hide)
        top = QHBoxLayout()
        top.addWidget(QLabel("Profile"))
        top.addWidget(self.profile, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.fetch)
        buttons.addWidget(self.cancel)
        buttons.addStretch(1)
        buttons.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.warning)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.bar)
        lay.addWidget(self.status)
        lay.addLayout(buttons)
        self.bindings = Bindings()
        self.bindings.bind(state, "settings", self._settings_changed)

    def _settings_changed(self, settings: Any) -> None:
        name = get_profile(settings.profile or None).name
        self.profile.setCurrentIndex(max(0, self.profile.findData(name)))

    def _profile_chosen(self) -> None:
        if self.isVisible():  # looked up when shown, not at start-up
            self.refresh()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()

    def profile_name(self) -> str:
        return self.profile.currentData()

    def refresh(self) -> None:
        name = self.profile_name()
        in_use = get_profile(self.state.settings.profile or None).name
        warning = test_models_warning(in_use) if name == in_use else ""
        if not warning and get_profile(name).test_models:
            warning = "These are the tiny test models: for tests and offline smoke runs only."
        self.warning.setText(warning)
        self.warning.setVisible(bool(warning))
        self.status.setText(f"{self.outcome} Looking for the models on this computer…".strip())
        self.fetch.setEnabled(False)
        self._request += 1
        key = ("roles", name, self._request)
        self.loader.request(key, role_statuses, name, dict(self.state.settings.role_overrides))

    def _statuses_ready(self, key: object, statuses: object) -> None:
        if key != ("roles", self.profile_name(), self._request):
            return  # an answer for a profile no longer shown
        self.table.setRowCount(0)
        self.missing = []
        for status in statuses:
            row = self.table.rowCount()
            self.table.insertRow(row)
            later = not status.present and status.source.startswith("tiny:")
            state = QTableWidgetItem("present" if status.present else
                                     "not built yet" if later else "missing")
            state.setForeground(PRESENT if status.present else LATER if later else MISSING)
            for col, item in enumerate((QTableWidgetItem(status.role), state,
                                        QTableWidgetItem(status.source),
                                        QTableWidgetItem(status.note))):
                item.setToolTip(str(status.path or status.note))
                self.table.setItem(row, col, item)
            if not status.present:
                self.missing.append(status.role)
        if self.job is None:
            found = (f"Missing: {', '.join(self.missing)}." if self.missing
                     else "Every model of this profile is on this computer.")
            self.status.setText(f"{self.outcome} {found}".strip())
        self.fetch.setEnabled(bool(self.missing) and self.job is None)

    def fetch_missing(self) -> None:
        if self.job is not None or not self.missing:
            return
        params = {"profile": self.profile_name(), "roles": list(self.missing),
                  "overrides": dict(self.state.settings.role_overrides)}
        try:
            handle = self.jobs.submit("ensure-models", params,
                                      f"Get models of {self.profile_name()}",
                                      on_event=self._job_event)
        except MyCanvasError as exc:
            self.status.setText(str(exc))
            return
        self.job = handle.job_id
        self.outcome = ""
        self.fetch.setEnabled(False)
        self.cancel.setEnabled(True)
        self.bar.setRange(0, 0)
        self.bar.show()
        self.status.setText("Starting…")

    def _job_event(self, event: JobEvent) -> None:
        if isinstance(event, JobProgress):
            self.bar.setRange(0, max(1, event.total))
            self.bar.setValue(min(event.step, event.total))
            self.status.setText(f"{event.message} — {eta_text(event.eta_seconds)}")
        elif isinstance(event, JobFinished | JobFailed | JobCancelled):
            self.job = None
            self.cancel.setEnabled(False)
            self.bar.hide()
            self.outcome = (event.reason if isinstance(event, JobFailed) else
                            "Cancelled; what was fully downloaded is kept." if
                            isinstance(event, JobCancelled) else "Done.")
            self.refresh()

    def teardown(self) -> None:
        self.bindings.clear()
        self.loader.shutdown()
