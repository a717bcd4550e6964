"""A concept's name and token changed, or the concept deleted, from the Concepts page: the
rename dialog says what a new token means for runs already trained (they keep the token they
were trained on), and the delete confirmation counts what goes and what stays
(engine/project/concept_removal.py; `mycanvas concept rename|delete` does the same). And the
Extract step's question: add the concepts new to the project to its list, or keep them only
inside the extraction run (`mycanvas extract --no-add-concepts`)."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)


def token_note(old_token: str) -> str:
    return (f"A new token is what new prompts, dataset captions and training use. Runs "
            f"already trained keep the token they were trained on: prompts for them still "
            f"say {old_token}.")


class ConceptRenameDialog(QDialog):
    """The concept's new name and token."""

    def __init__(self, concept: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("conceptRename")
        self.setWindowTitle(f"Rename {concept.name}")
        self.name_edit = QLineEdit(concept.name)
        self.name_edit.setObjectName("conceptRenameName")
        self.token_edit = QLineEdit(concept.token)
        self.token_edit.setObjectName("conceptRenameToken")
        self.token_edit.setToolTip("lowercase letters, digits, '-' or '_' inside angle "
                                   "brackets, e.g. <mochi>")
        note = QLabel(token_note(concept.token))
        note.setObjectName("conceptRenameNote")
        note.setTextFormat(Qt.TextFormat.PlainText)  # a <token> is not a tag
        note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("Token", self.token_edit)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(buttons)

    def values(self) -> tuple[str, str]:
        return self.name_edit.text().strip(), self.token_edit.text().strip()


def concept_delete_box(footprint: Any, parent: QWidget | None = None) -> QMessageBox:
    """The confirmation of a concept delete: what goes, what stays; No is the default."""
    box = QMessageBox(parent)
    box.setObjectName("conceptDeleteConfirm")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(f"Delete {footprint.name}")
    box.setTextFormat(Qt.TextFormat.RichText)  # for both texts: each name escaped
    box.setText(html.escape(f"Delete the concept {footprint.name} {footprint.token}?"))
    goes = "".join(f"<li>{html.escape(part)}</li>" for part in footprint.goes())
    stays = "".join(f"<li>{html.escape(part)}</li>" for part in footprint.stays())
    box.setInformativeText(
        f"This removes:<ul>{goes}</ul>"
        + (f"What stays:<ul>{stays}</ul>" if stays else "")
        + "This cannot be undone.")
    box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
    box.setDefaultButton(QMessageBox.StandardButton.No)
    box.button(QMessageBox.StandardButton.Yes).setText("Delete")
    box.button(QMessageBox.StandardButton.No).setText("Keep it")
    return box


ADD, KEEP_IN_RUN = "add", "keep-in-run"


def add_concepts_box(names: list[str], parent: QWidget | None = None
                     ) -> tuple[QMessageBox, dict[Any, str]]:
    """Extract's question before a run with concepts new to the project; the box and what
    each of its buttons means (ADD, KEEP_IN_RUN; Cancel: none)."""
    box = QMessageBox(parent)
    box.setObjectName("extractAddConcepts")
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Add the concepts to the project?")
    listed = ", ".join(names)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setText(f"{listed} {'is' if len(names) == 1 else 'are'} new to this project.")
    box.setInformativeText(
        "Add them to the concept list (with this photo and the masks the run finds), or keep "
        "them only inside this extraction run: its export keeps their tokens, so you can "
        "generate with the run, and the concept list stays as it is.")
    add = box.addButton("Add to the concept list", QMessageBox.ButtonRole.AcceptRole)
    keep = box.addButton("Keep only in this run", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(add)
    return box, {add: ADD, keep: KEEP_IN_RUN}
