"""The first screens a new user meets.

* `StartPage`: no project open. New, Open, the recent projects, and a sample project made
  from the photos bundled in resources/samples (a cat, a mug, a toy rocket).
* `WelcomePanel`: a project with nothing in it yet. What to do first, with buttons for it:
  new concept from photos (file dialog), paste photos, or drop them on the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.paths import RESOURCES, data_dir

SAMPLES = RESOURCES / "samples"
PATH_ROLE = Qt.ItemDataRole.UserRole


@dataclass(frozen=True)
class SampleConcept:
    name: str
    token: str
    class_word: str
    photo: Path


SAMPLE_CONCEPTS = (
    SampleConcept("Mochi", "<mochi>", "cat", SAMPLES / "cat.jpg"),
    SampleConcept("Cup", "<cup>", "mug", SAMPLES / "mug.jpg"),
    SampleConcept("Rocket", "<rocket>", "toy rocket", SAMPLES / "rocket.jpg"),
)


def sample_project_folder() -> Path:
    """Where the sample project lives: the app's data folder (it is listed under recent
    projects once made, and opened again rather than made twice)."""
    return data_dir() / "projects" / "Sample project"


def _big_button(text: str, tip: str, name: str) -> QPushButton:
    button = QPushButton(text)
    button.setObjectName(name)
    button.setToolTip(tip)
    button.setMinimumHeight(40)
    return button


def _centre(page: QWidget, column: QVBoxLayout, max_width: int) -> None:
    """Lay `column` out in the middle of `page`, no wider than `max_width`."""
    box = QWidget()
    box.setMaximumWidth(max_width)
    box.setLayout(column)
    outer = QHBoxLayout(page)
    outer.addStretch(1)
    outer.addWidget(box, 4)
    outer.addStretch(1)


class StartPage(QWidget):
    """Shown while no project is open."""

    new_requested = Signal()
    open_requested = Signal()
    recent_chosen = Signal(object)  # Path
    sample_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("startPage")
        title = QLabel("<h1>MyCanvas Studio</h1><p>Put several of <i>your own</i> pets and "
                       "things together in new pictures, on this computer.</p><p>A project "
                       "holds the photos of your things and everything made from them. Start "
                       "a new one, open one, or try the sample project: a cat, a mug and a toy "
                       "rocket, ready to go.</p>")
        title.setWordWrap(True)
        title.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.new_button = _big_button("New project…", "Make a project in a new folder "
                                      "(Ctrl+N)", "startNew")
        self.open_button = _big_button("Open project…", "Open a project folder (Ctrl+O)",
                                       "startOpen")
        self.sample_button = _big_button("Try the sample project",
                                         "A project made from three bundled photos: a cat, a "
                                         "mug and a toy rocket", "startSample")
        self.new_button.clicked.connect(self.new_requested)
        self.open_button.clicked.connect(self.open_requested)
        self.sample_button.clicked.connect(self.sample_requested)
        buttons = QHBoxLayout()
        for button in (self.new_button, self.open_button, self.sample_button):
            buttons.addWidget(button)
        self.recent_title = QLabel("<b>Recent projects</b>")
        self.recent = QListWidget()
        self.recent.setObjectName("recentProjects")
        self.recent.setMaximumHeight(280)
        self.recent.itemActivated.connect(self._chosen)
        self.recent.itemClicked.connect(self._chosen)
        column = QVBoxLayout()
        column.addWidget(title)
        column.addLayout(buttons)
        column.addSpacing(16)
        column.addWidget(self.recent_title)
        column.addWidget(self.recent)
        column.addStretch(1)
        _centre(self, column, 720)

    def show_recent(self, paths: list[str]) -> None:
        self.recent.clear()
        for text in paths:
            path = Path(text)
            there = (path / "catalogue.sqlite").is_file()
            item = QListWidgetItem(f"{path.name}\n{path.parent}" if there else
                                   f"{path.name} (not found)\n{path.parent}")
            item.setData(PATH_ROLE, str(path))
            item.setToolTip(str(path) if there else f"{path} is no longer there")
            if not there:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.recent.addItem(item)
        self.recent_title.setVisible(bool(paths))
        self.recent.setVisible(bool(paths))

    def _chosen(self, item: QListWidgetItem) -> None:
        if item.flags() & Qt.ItemFlag.ItemIsEnabled:
            self.recent_chosen.emit(Path(item.data(PATH_ROLE)))


class WelcomePanel(QWidget):
    """Shown on the Concepts step while the project has no concept."""

    new_concept_requested = Signal()
    paste_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("welcomePanel")
        self.text = QLabel(
            "<h2>Start with photos of your things</h2>"
            "<ol><li><b>Add a few photos of one thing</b> — your cat, a plant, a mug. Each set "
            "of photos becomes a <i>concept</i>; the app finds the thing in every photo.</li>"
            "<li>Add a second concept the same way (the pictures put several together).</li>"
            "<li><b>Layouts</b>: let the planner arrange them in scenes, or place them by "
            "hand.</li>"
            "<li><b>Dataset</b>: the app paints training pictures from the layouts; you "
            "keep the good ones.</li></ol>"
            "<p>Drop photos or a folder anywhere on this window, or:</p>")
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.new_button = _big_button("New concept from photos…", "Choose photos of one "
                                      "thing (Ctrl+I)", "welcomeNewConcept")
        self.paste_button = _big_button("Paste photos", "A photo copied in another program, "
                                        "or photo files copied in the file manager (Ctrl+V)",
                                        "welcomePaste")
        self.new_button.clicked.connect(self.new_concept_requested)
        self.paste_button.clicked.connect(self.paste_requested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.new_button)
        buttons.addWidget(self.paste_button)
        buttons.addStretch(1)
        column = QVBoxLayout()
        column.addStretch(1)
        column.addWidget(self.text)
        column.addLayout(buttons)
        column.addStretch(2)
        _centre(self, column, 640)
