"""Dropped photos: which files a drop holds, what to call a new concept, and the inline form
that asks for its name, token and class word.

Which files are images is the engine's call (import reports every file it refuses, with the
reason); here a folder only becomes the files inside it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
)

from engine.intake.photos import starts_like_a_photo
from engine.paths import RESOURCES
from engine.project import TOKEN_PATTERN, class_word_problem, concept_token

MAX_FILES_PER_DROP = 200  # a dropped photo library is refused by the engine per file anyway
_NUMBERING = re.compile(r"[\s_\-.]*(?:\(\d+\)|\d+|img|dsc|photo|copy)*$", re.IGNORECASE)


def paths_from_mime(mime: QMimeData) -> list[Path]:
    """Local files and folders of a drop (other URLs are ignored)."""
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


def accept_as_copy(event: QDropEvent) -> bool:
    """Take a drag of files (enter, move or drop) as a copy, never a move: a file manager
    that honours Move deletes what was dropped. False (and ignored) when it holds no files or
    the source does not allow a copy."""
    if not event.mimeData().hasUrls() or \
            not event.possibleActions() & Qt.DropAction.CopyAction:
        event.ignore()
        return False
    event.setDropAction(Qt.DropAction.CopyAction)
    event.accept()
    return True


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as they are; a folder becomes the visible files inside it (and its subfolders)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*")
                            if p.is_file() and not any(part.startswith(".")
                                                       for part in p.relative_to(path).parts))
            files.extend(inside)
        else:
            files.append(path)
        if len(files) >= MAX_FILES_PER_DROP:
            break
    return files[:MAX_FILES_PER_DROP]


@lru_cache(maxsize=1)
def known_class_words() -> tuple[str, ...]:
    """Class words the planner knows sizes for, longest first ("guinea pig" before "pig")."""
    try:
        data = json.loads((RESOURCES / "size_priors.json").read_text(encoding="utf-8"))
        words = [str(w) for w in data.get("classes", {})]
    except (OSError, ValueError):
        words = []
    return tuple(sorted(words, key=len, reverse=True))


@dataclass(frozen=True)
class ConceptSuggestion:
    name: str
    token: str
    class_word: str


# File names a camera or a phone makes, and folders that only hold things: they say nothing
# about what the photos show, so the guess looks one folder up (or leaves it to the user).
_GENERIC_STEM = re.compile(r"^(?:img|image|dsc[nf]?|pxl|photo|picture|pic|mvimg|screenshot|"
                           r"scan|snapshot|p)?$", re.IGNORECASE)
_CONTAINER_FOLDERS = frozenset({"downloads", "desktop", "pictures", "photos", "images",
                                "documents", "dcim", "camera", "tmp", "temp", "home", ""})


def _folder_says(folder: Path) -> str:
    """A folder's name if it may say what is inside ("cat", "my mug"), else ""."""
    name = folder.name
    return "" if name.lower() in _CONTAINER_FOLDERS or _GENERIC_STEM.match(name) else name


def _base_name(dropped: Sequence[Path]) -> str:
    folders = [p for p in dropped if p.is_dir()]
    if folders:
        return folders[0].name
    for path in dropped:
        stem = _NUMBERING.sub("", path.stem).strip(" _-.")
        if stem and not _GENERIC_STEM.match(stem):
            return stem
    parents = [_folder_says(p.parent) for p in dropped]
    return next((p for p in parents if p), "concept")


def _guess_words(dropped: Sequence[Path]) -> str:
    """The names a class word may be read from: the files', the dropped folders' and their
    subfolders', then the folders the dropped files are in ("cat/IMG_0001.jpg" -> cat)."""
    names = [p.name if p.is_dir() else p.stem for p in dropped]
    for path in dropped:
        if path.is_dir():
            names += sorted(sub.name for sub in path.iterdir()
                            if sub.is_dir() and not sub.name.startswith("."))[:20]
    names += [_folder_says(p.parent) for p in dropped if not p.is_dir()]
    return " ".join(re.sub(r"[_\-.]+", " ", n).lower() for n in names if n)


def suggest_concept(dropped: Sequence[Path], names: Iterable[str],
                    tokens: Iterable[str]) -> ConceptSuggestion:
    """Name from the folder or file names, a free token, and a class word when a name says
    one ("my cat photos" -> cat, "mug/IMG_0001.jpg" -> mug); else the class word is left for
    the user. A file that is no photo (the import will refuse it) says nothing."""
    dropped = [p for p in dropped if p.is_dir() or starts_like_a_photo(p)]
    raw = re.sub(r"[_\-]+", " ", _base_name(dropped)).strip() or "concept"
    used = {n.lower() for n in names}
    name, n = raw[:1].upper() + raw[1:], 2
    while name.lower() in used:
        name, n = f"{raw[:1].upper() + raw[1:]} {n}", n + 1
    words = _guess_words(dropped)
    class_word = next((w for w in known_class_words()
                       if re.search(rf"\b{re.escape(w)}s?\b", words)), "")
    return ConceptSuggestion(name, concept_token(name, tokens), class_word)


# "Token" and "class word" are the words of the papers; the form says what they are for.
TOKEN_HELP = ("A made-up word the model learns for this very thing; you write it in prompts "
              "later, e.g. “<mochi> on a beach”.")
CLASS_WORD_HELP = ("What kind of thing it is, in plain words (cat, mug, houseplant): the model "
                   "starts from what it knows about that kind. Guessed from the folder or file "
                   "names; correct it if the guess is wrong.")


def _help_label(text: str, name: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setStyleSheet("color: gray")
    # Only as tall as its lines: a form row otherwise keeps the height of a narrower width.
    label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
    return label


class NewConceptForm(QFrame):
    """Asks, inline, what the dropped photos show. Enter creates, Escape cancels."""

    create_requested = Signal(str, str, str, list)  # name, token, class word, files
    cancelled = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("newConceptForm")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.files: list[Path] = []
        self._taken_tokens: set[str] = set()
        self._token_edited = False
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("newConceptName")
        self.token_edit = QLineEdit()
        self.token_edit.setObjectName("newConceptToken")
        self.token_edit.setToolTip(TOKEN_HELP)
        self.class_edit = QLineEdit()
        self.class_edit.setObjectName("newConceptClass")
        self.class_edit.setPlaceholderText("what is it? e.g. cat, mug, plant")
        self.class_edit.setToolTip(CLASS_WORD_HELP)
        self.token_help = _help_label(TOKEN_HELP, "newConceptTokenHelp")
        self.class_help = _help_label(CLASS_WORD_HELP, "newConceptClassHelp")
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #b3261e")
        self.create_button = QPushButton("Create concept")
        self.create_button.setDefault(True)
        cancel = QPushButton("Cancel")
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("Token", self.token_edit)
        form.addRow("", self.token_help)
        form.addRow("Class word", self.class_edit)
        form.addRow("", self.class_help)
        buttons = QHBoxLayout()
        buttons.addWidget(self.problem, 1)
        buttons.addWidget(cancel)
        buttons.addWidget(self.create_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.heading)
        lay.addLayout(form)
        lay.addLayout(buttons)
        self.name_edit.textEdited.connect(self._name_edited)
        self.token_edit.textEdited.connect(self._token_typed)
        for edit in (self.name_edit, self.token_edit, self.class_edit):
            edit.textChanged.connect(self._validate)
            edit.returnPressed.connect(self.submit)
        self.create_button.clicked.connect(self.submit)
        cancel.clicked.connect(self.cancel)
        self.hide()

    def ask(self, files: list[Path], suggestion: ConceptSuggestion,
            taken_tokens: Iterable[str]) -> None:
        self.files = list(files)
        self._taken_tokens = set(taken_tokens)
        self._token_edited = False
        count = len(files)
        names = ", ".join(f.name for f in files[:3]) + (", …" if count > 3 else "")
        self.heading.setText(f"<b>New concept</b> from {count} file{'s' * (count != 1)} "
                             f"({html.escape(names)}). What do these photos show?")
        self.name_edit.setText(suggestion.name)
        self.token_edit.setText(suggestion.token)
        self.class_edit.setText(suggestion.class_word)
        self.show()
        target = self.class_edit if not suggestion.class_word else self.name_edit
        target.setFocus()
        target.selectAll()
        self._validate()

    def problems(self) -> str:
        if not self.name_edit.text().strip():
            return "Give the concept a name."
        if not TOKEN_PATTERN.match(self.token_edit.text().strip()):
            return "A token looks like <mochi>: lowercase letters, digits, - or _."
        if self.token_edit.text().strip() in self._taken_tokens:
            return "That token is already used by another concept."
        if not self.class_edit.text().strip():
            return "Say what it is (a class word such as cat)."
        # The project store's own rule and words, as the command line gets them.
        return class_word_problem(self.class_edit.text())

    def submit(self) -> None:
        if self.isHidden() or self.problems():
            return
        self.create_requested.emit(self.name_edit.text().strip(), self.token_edit.text().strip(),
                                   self.class_edit.text().strip(), list(self.files))
        self.hide()

    def cancel(self) -> None:
        self.files = []
        self.hide()
        self.cancelled.emit()

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.cancel()
            return
        super().keyPressEvent(event)

    def _name_edited(self, text: str) -> None:
        if not self._token_edited:
            self.token_edit.setText(concept_token(text or "concept", self._taken_tokens))

    def _token_typed(self, _text: str) -> None:
        self._token_edited = True

    def _validate(self) -> None:
        problem = self.problems()
        self.problem.setText(problem)
        self.create_button.setEnabled(not problem)
