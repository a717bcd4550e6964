"""The model manager: which roles of a profile are on this computer, how big the missing ones
are, and getting them (job "ensure-models": tiny models are built, the planner GGUF assembled,
the rest downloaded) with progress, cancel and retry. Each role can instead come from a folder
(or file) the user picks: Settings.role_overrides, which every job uses. It says plainly when
the tiny test models are in use.

Looking the roles up touches the Hugging Face cache (and imports huggingface_hub), and asking
the Hub for sizes goes on the network, so both run off the GUI thread.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
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

from desktop_app.state.job_state import JobState
from desktop_app.state.jobs_bridge import JobsBridge
from desktop_app.state.observable import AppState, Bindings
from desktop_app.state.plain_words import for_window
from desktop_app.state.thumbnails import BackgroundLoader
from engine.errors import MyCanvasError
from engine.jobs import JobCancelled, JobEvent, JobFailed, JobFinished
from engine.models.profiles import download_mb, get_profile, profile_names

PRESENT, LATER, MISSING = QColor(27, 125, 58), QColor(138, 90, 0), QColor(179, 38, 30)
COLUMNS = ("Role", "Status", "Download", "Where from", "Note", "")
SINGLE_FILE_ROLES = {"segmenter": "SAM checkpoints (*.pth *.safetensors)",
                     "planner": "GGUF models (*.gguf)"}


def role_statuses(profile: str, overrides: dict[str, str]) -> list[Any]:
    from engine.models.profiles import role_names, role_status

    prof = get_profile(profile)
    return [role_status(prof, role, overrides) for role in role_names()]


def hub_sizes(profile: str, roles: list[str]) -> dict[str, tuple[int | None, str]]:
    """Role -> (bytes to download, "") from the Hub's file list, or (None, why not)."""
    from engine.models.hub import plan_files

    prof = get_profile(profile)
    out: dict[str, tuple[int | None, str]] = {}
    for role in roles:
        spec = prof.role(role)
        if not spec.repo:
            continue
        try:
            out[role] = (sum(size for _name, size, _sha in plan_files(spec)), "")
        except Exception as exc:  # offline, no DNS, gated: the size stays unknown, and why
            offline = type(exc).__name__ == "OfflineModeIsEnabled"
            out[role] = (None, "offline mode is on" if offline else
                         "the Hugging Face Hub cannot be reached from here")
    return out


def size_text(size_bytes: float) -> str:
    if size_bytes >= 1e9:
        return f"{size_bytes / 1e9:.1f} GB"
    return f"{max(1, round(size_bytes / 1e6))} MB"


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
        self.resize(900, 400)
        self.state, self.jobs = state, jobs
        self.loader = BackgroundLoader(self)
        self.loader.ready.connect(self._looked_up)
        self.loader.failed.connect(lambda _k, error: self.status.setText(error))
        self.job: str | None = None
        self.outcome = ""  # how the last download ended, shown with the statuses
        self.failed = False  # the last download failed: the button offers to retry
        self._request = 0
        self.missing: list[str] = []
        self.sizes: dict[str, str] = {}  # role -> what the Download column says
        self._hub: dict[tuple[str, str], str] = {}  # (profile, role) -> exact size, once known
        self.profile = QComboBox()
        for name in profile_names():
            self.profile.addItem(f"{get_profile(name).label} ({name})", name)
        self.profile.currentIndexChanged.connect(self._profile_chosen)
        self.warning = QLabel()
        self.warning.setObjectName("testModelsWarning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("background: #fff4d6; color: #6b4e00; padding: 6px")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("roleTable")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        header = self.table.horizontalHeader()
        for column in (0, 1, 2, 5):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        for column in (3, 4):
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
        self._settings_profile = ""
        self.bindings = Bindings()
        self.job_bindings = Bindings()  # to the running job's JobState
        self.bindings.bind(state, "settings", self._settings_changed)

    def _settings_changed(self, settings: Any) -> None:
        name = get_profile(settings.profile or None).name
        if name != self._settings_profile:  # other settings (a role's folder) keep the view
            self._settings_profile = name
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
        self.loader.request(("roles", name, self._request), role_statuses, name,
                            dict(self.state.settings.role_overrides))

    def _looked_up(self, key: object, answer: object) -> None:
        if not isinstance(key, tuple) or key[1:] != (self.profile_name(), self._request):
            return  # an answer for a profile no longer shown
        if key[0] == "roles":
            self._show_statuses(answer)
        elif key[0] == "sizes":
            for role, (size, why) in answer.items():
                if size:
                    self.sizes[role] = self._hub[key[1], role] = size_text(size)
                elif role not in self.sizes:
                    self.sizes[role] = f"size unknown: {why}"
            self._fill_sizes()
            self._say_what_is_missing()

    def _show_statuses(self, statuses: Any) -> None:
        prof = get_profile(self.profile_name())
        self.table.setRowCount(0)
        self.missing = []
        self.sizes = {}
        overrides = self.state.settings.role_overrides
        for status in statuses:
            row = self.table.rowCount()
            self.table.insertRow(row)
            later = not status.present and status.source.startswith("tiny:")
            state = QTableWidgetItem("present" if status.present else
                                     "not built yet" if later else "missing")
            state.setForeground(PRESENT if status.present else LATER if later else MISSING)
            spec = prof.role(status.role)
            exact = self._hub.get((prof.name, status.role))
            if not status.present and exact:
                self.sizes[status.role] = exact
            elif not status.present and spec.repo and spec.approx_download_mb:
                self.sizes[status.role] = f"about {size_text(spec.approx_download_mb * 1e6)}"
            for col, item in enumerate((QTableWidgetItem(status.role), state,
                                        QTableWidgetItem(""),
                                        QTableWidgetItem(status.source),
                                        QTableWidgetItem(for_window(status.note)))):
                item.setToolTip(str(status.path or for_window(status.note)))
                self.table.setItem(row, col, item)
            self.table.setCellWidget(row, 5, self._folder_buttons(status.role,
                                                                  status.role in overrides))
            if not status.present:
                self.missing.append(status.role)
        self._fill_sizes()
        self._say_what_is_missing()
        self.fetch.setEnabled(bool(self.missing) and self.job is None)
        self.fetch.setText("Retry the download" if self.failed and self.missing
                           else "Get the missing models")
        downloads = [r for r in self.missing
                     if prof.role(r).repo and (prof.name, r) not in self._hub]
        if downloads:  # exact sizes, if the Hub answers (asked once per role)
            self.loader.request(("sizes", self.profile_name(), self._request), hub_sizes,
                                self.profile_name(), downloads)

    def _folder_buttons(self, role: str, overridden: bool) -> QWidget:
        box = QWidget()
        lay = QHBoxLayout(box)
        lay.setContentsMargins(2, 0, 2, 0)
        choose = QPushButton("Choose file…" if role in SINGLE_FILE_ROLES else "Choose folder…")
        choose.setObjectName(f"chooseFolder-{role}")
        choose.setToolTip(f"Use {role} weights already on this computer (a folder in the "
                          "download's layout, or the file itself)")
        choose.clicked.connect(lambda: self.choose_folder(role))
        lay.addWidget(choose)
        if overridden:
            forget = QPushButton("Use the download")
            forget.setObjectName(f"forgetFolder-{role}")
            forget.setToolTip("Forget the chosen folder: the profile's download is used")
            forget.clicked.connect(lambda: self.set_role_folder(role, None))
            lay.addWidget(forget)
        return box

    def _fill_sizes(self) -> None:
        for row in range(self.table.rowCount()):
            role = self.table.item(row, 0).text()
            self.table.item(row, 2).setText(self.sizes.get(role, ""))

    def _say_what_is_missing(self) -> None:
        if self.job is not None:
            return
        if not self.missing:
            found = "Every model of this profile is on this computer."
        else:
            listed = ", ".join(f"{r} ({self.sizes[r]})" if r in self.sizes else r
                               for r in self.missing)
            total = download_mb(get_profile(self.profile_name()), self.missing)
            in_all = f" In all about {size_text(total * 1e6)}." if total else ""
            found = (f"Missing: {listed}.{in_all} Get them, or choose the folder that holds "
                     "one if it is already on this computer.")
        self.status.setText(f"{self.outcome} {found}".strip())

    # ------------------------------------------------------------------ folders per role

    def choose_folder(self, role: str) -> None:
        if role in SINGLE_FILE_ROLES:
            chosen = QFileDialog.getOpenFileName(self, f"The {role} model file", "",
                                                 SINGLE_FILE_ROLES[role])[0]
        else:
            chosen = QFileDialog.getExistingDirectory(self, f"The folder of the {role} model")
        if chosen:
            self.set_role_folder(role, chosen)

    def set_role_folder(self, role: str, path: str | None) -> None:
        """Use `path` for `role` from now on (None: the profile's download); saved."""
        overrides = dict(self.state.settings.role_overrides)
        if path:
            overrides[role] = path
        else:
            overrides.pop(role, None)
        problem = self.state.save_settings(replace(self.state.settings,
                                                   role_overrides=overrides))
        if problem:
            self.status.setText(problem)
            return
        self.outcome, self.failed = "", False
        self.refresh()

    # ------------------------------------------------------------------ downloads

    def fetch_missing(self) -> None:
        if self.job is not None or not self.missing:
            return
        params = {"profile": self.profile_name(), "roles": list(self.missing),
                  "overrides": dict(self.state.settings.role_overrides)}
        try:
            handle = self.jobs.submit("ensure-models", params,
                                      f"Get the models of {self.profile_name()}",
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
        job = self.jobs.states[handle.job_id]
        self.job_bindings.on(job, "line", lambda _line: self._show_progress(job))

    def _show_progress(self, job: JobState) -> None:
        self.bar.setRange(0, max(1, job.total))
        self.bar.setValue(min(job.step, job.total))
        self.status.setText(job.line)

    def _job_event(self, event: JobEvent) -> None:
        if isinstance(event, JobFinished | JobFailed | JobCancelled):
            self.job_bindings.clear()
            self.job = None
            self.cancel.setEnabled(False)
            self.bar.hide()
            self.failed = isinstance(event, JobFailed)
            if isinstance(event, JobFailed):
                fields = event.fields
                self.outcome = (f"The download failed: {fields.cause}." if fields.cause else
                                "The download failed: "
                                f"{fields.problem or for_window(event.reason)}")
            else:
                self.outcome = ("Cancelled; what was fully downloaded is kept." if
                                isinstance(event, JobCancelled) else "Done.")
            self.refresh()

    def teardown(self) -> None:
        self.job_bindings.clear()
        self.bindings.clear()
        self.loader.shutdown()
