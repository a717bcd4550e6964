"""Settings: device, precision (with what float32 costs on this device), model profile, model
folder, planner GGUF. Every field is checked as it
is typed; OK stays disabled while one is wrong. Saving goes through engine.settings, which
validates again and writes atomically; a settings file that cannot be read is backed up by the
engine and reported here."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.device import DEVICES, PRECISIONS
from engine.errors import MyCanvasError
from engine.models.profiles import get_profile, profile_names
from engine.settings import Settings, load_settings, save_settings


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def load_settings_reporting(path: Path | None = None) -> tuple[Settings, list[str]]:
    """The settings and what the engine had to repair while loading them (a bad file backed
    up, an invalid key reset), for the window to show instead of only logging."""
    handler = _Collect()
    logger = logging.getLogger("engine.settings")
    logger.addHandler(handler)
    try:
        settings = load_settings(path)
    finally:
        logger.removeHandler(handler)
    return settings, handler.messages


def device_problem(text: str) -> str:
    if text in DEVICES or (text.startswith("cuda:") and text[5:].isdigit()):
        return ""
    return f"Device must be one of {', '.join(DEVICES)} or cuda:N."


def gguf_problem(text: str) -> str:
    if not text:
        return ""
    path = Path(text).expanduser()
    if not path.is_file():
        return f"No planner model file at {path}."
    if path.suffix.lower() != ".gguf":
        return "The planner model must be a .gguf file."
    return ""


def folder_problem(text: str) -> str:
    if text and not Path(text).expanduser().is_dir():
        return f"No folder at {Path(text).expanduser()}."
    return ""


PRECISION_TEXT = {"auto": "auto: the fastest this device runs well (bf16 or float16)",
                  "float32": "float32: full precision everywhere"}
COST_UNKNOWN = "What float32 costs here is known once the device is detected."


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent: QWidget | None = None,
                 float32_cost: str = "") -> None:
        """`float32_cost`: the device plan's line on what float32 costs (device-info job)."""
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self.original = settings
        self.saved: Settings | None = None
        self.device = QComboBox()
        self.device.setEditable(True)
        self.device.addItems(list(DEVICES))
        self.device.setCurrentText(settings.device)
        self.precision = QComboBox()
        self.precision.setObjectName("settingsPrecision")
        for name in PRECISIONS:
            self.precision.addItem(PRECISION_TEXT.get(name, name), name)
        self.precision.setCurrentIndex(max(0, self.precision.findData(settings.precision)))
        self.precision_note = QLabel(float32_cost or COST_UNKNOWN)
        self.precision_note.setObjectName("precisionCost")
        self.precision_note.setWordWrap(True)
        self.precision_note.setStyleSheet("color: gray")
        self.profile = QComboBox()
        for name in profile_names():
            self.profile.addItem(get_profile(name).label, name)
        default = get_profile(None).name
        self.profile.setCurrentIndex(max(0, self.profile.findData(settings.profile or default)))
        self.profile_note = QLabel()
        self.profile_note.setWordWrap(True)
        self.model_folder = QLineEdit(settings.model_folder)
        self.model_folder.setPlaceholderText("the app's data folder")
        self.model_folder.setToolTip(
            "Saved in the settings; the engine does not search this folder yet. Models come "
            "from the Hugging Face cache and the app's data folder.")
        self.planner = QLineEdit(settings.planner_gguf)
        self.planner.setPlaceholderText("the embedded Gemma 3 270M model")
        self.chat_format = QLineEdit(settings.planner_chat_format)
        self.chat_format.setPlaceholderText("empty: plain completion (base models)")
        self.problem = QLabel()
        self.problem.setObjectName("settingsProblem")
        self.problem.setStyleSheet("color: #b3261e")
        self.problem.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Device", self.device)
        form.addRow("Precision", self.precision)
        form.addRow("", self.precision_note)
        form.addRow("Model profile", self.profile)
        form.addRow("", self.profile_note)
        form.addRow("Model folder", self._with_browse(self.model_folder, folder=True))
        per_model = QLabel("Each model can come from its own folder or file: Settings › "
                           "Models…, where the missing ones can be downloaded too.")
        per_model.setObjectName("perModelHint")
        per_model.setWordWrap(True)
        per_model.setStyleSheet("color: gray")
        form.addRow("", per_model)
        form.addRow("Planner model (GGUF)", self._with_browse(self.planner, folder=False))
        form.addRow("Planner chat format", self.chat_format)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.problem)
        lay.addWidget(self.buttons)
        self.device.currentTextChanged.connect(self.validate)
        self.profile.currentIndexChanged.connect(self.validate)
        for edit in (self.model_folder, self.planner, self.chat_format):
            edit.textChanged.connect(self.validate)
        self.validate()

    def _with_browse(self, edit: QLineEdit, folder: bool) -> QWidget:
        button = QPushButton("Browse…")

        def browse() -> None:
            chosen = (QFileDialog.getExistingDirectory(self, "Model folder") if folder else
                      QFileDialog.getOpenFileName(self, "Planner model", "",
                                                  "GGUF models (*.gguf)")[0])
            if chosen:
                edit.setText(chosen)

        button.clicked.connect(browse)
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(edit, 1)
        lay.addWidget(button)
        return row

    def chosen(self) -> Settings:
        return replace(self.original, device=self.device.currentText().strip(),
                       precision=self.precision.currentData() or "auto",
                       profile=self.profile.currentData() or "",
                       model_folder=self.model_folder.text().strip(),
                       planner_gguf=self.planner.text().strip(),
                       planner_chat_format=self.chat_format.text().strip())

    def problems(self) -> list[str]:
        s = self.chosen()
        found = [device_problem(s.device), folder_problem(s.model_folder),
                 gguf_problem(s.planner_gguf)]
        return [p for p in found if p]

    def validate(self) -> None:
        profile = get_profile(self.profile.currentData() or None)
        note = profile.description
        if profile.test_models:
            note = f"⚠ TEST MODELS: {note}"
        self.profile_note.setText(note)
        problems = self.problems()
        self.problem.setText("\n".join(problems))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not problems)

    def accept(self) -> None:
        if self.problems():
            return
        settings = self.chosen()
        try:
            save_settings(settings)
        except (OSError, MyCanvasError) as exc:
            self.problem.setText(f"Could not save the settings: {exc}")
            return
        self.saved = settings
        super().accept()
