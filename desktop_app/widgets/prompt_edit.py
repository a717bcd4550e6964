"""The prompt of the Generate page: typing `<` offers the run's concept tokens (the list
narrows as you type; Enter or a click puts the token in, with its class word), and a chip per
concept puts its "<token> class" in at the cursor. A token that already says its class word
("<cat>", a cat) goes in alone: "<cat> cat" would say it twice."""

from __future__ import annotations

import re

from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtWidgets import QCompleter, QHBoxLayout, QLineEdit, QPushButton, QWidget


def partial_token(text: str, cursor: int) -> tuple[int, str] | None:
    """Where a token being typed starts and what is typed of it ("<mo"), or None."""
    start = text.rfind("<", 0, cursor)
    if start < 0 or ">" in text[start:cursor] or " " in text[start:cursor]:
        return None
    return start, text[start:cursor]


def concept_phrase(token: str, class_word: str) -> str:
    """What goes in the prompt for a concept: "<mochi> cat", but "<cat>" alone."""
    said = " ".join(w for w in re.split(r"[-_\d]+", token.strip("<>").lower()) if w)
    word = class_word.strip()
    if not word or re.search(rf"\b{re.escape(word.lower())}\b", said):
        return token
    return f"{token} {word}"


class PromptEdit(QLineEdit):
    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("generatePrompt")
        self.setPlaceholderText("a prompt with your concepts: type < for their names")
        self.class_words: dict[str, str] = {}
        self.tokens = QStringListModel(self)
        self.completer = QCompleter(self.tokens, self)
        self.completer.setWidget(self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.completer.activated.connect(self.insert_completion)
        self.textEdited.connect(self._edited)

    def set_concepts(self, concepts: list[tuple[str, str]]) -> None:
        """(token, class word) of the concepts the prompt may name."""
        self.class_words = dict(concepts)
        self.tokens.setStringList([token for token, _word in concepts])

    def _edited(self, text: str) -> None:
        found = partial_token(text, self.cursorPosition())
        if found is None or not self.class_words:
            self.completer.popup().hide()
            return
        self.completer.setCompletionPrefix(found[1])
        if self.completer.completionCount():
            rect = self.cursorRect()
            rect.setWidth(220)
            self.completer.complete(rect)
        else:
            self.completer.popup().hide()

    def insert_completion(self, token: str) -> None:
        """Replace the token being typed with `token` and its class word."""
        text, cursor = self.text(), self.cursorPosition()
        found = partial_token(text, cursor)
        start = found[0] if found else cursor
        piece = concept_phrase(token, self.class_words.get(token, ""))
        rest = text[cursor:]
        if rest and not rest.startswith(" "):
            piece += " "
        self.setText(text[:start] + piece + rest)
        self.setCursorPosition(start + len(piece))
        self.completer.popup().hide()

    def insert_concept(self, token: str) -> None:
        """A chip was clicked: its concept goes in at the cursor."""
        text, cursor = self.text(), self.cursorPosition()
        before = text[:cursor]
        lead = "" if not before or before.endswith(" ") else " "
        piece = lead + concept_phrase(token, self.class_words.get(token, ""))
        self.setText(before + piece + text[cursor:])
        self.setCursorPosition(cursor + len(piece))
        self.setFocus()


class ConceptChips(QWidget):
    """A button per concept; `chosen(token)`."""

    chosen = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("conceptChips")
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.buttons: dict[str, QPushButton] = {}

    def set_concepts(self, concepts: list[tuple[str, str, str]]) -> None:
        """(token, name, class word) per concept."""
        while self.row.count():
            widget = self.row.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.buttons = {}
        for token, name, word in concepts:
            button = QPushButton(f"{name} {token}")
            button.setToolTip(f"Put “{concept_phrase(token, word)}” in the prompt")
            button.setStyleSheet("QPushButton { border-radius: 10px; padding: 3px 10px; "
                                 "background: #e3ecfa; border: 1px solid #9bb5e0 }")
            button.clicked.connect(lambda _c=False, t=token: self.chosen.emit(t))
            self.row.addWidget(button)
            self.buttons[token] = button
        self.row.addStretch(1)
