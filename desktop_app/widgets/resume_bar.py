"""A bar above the steps that names jobs cut short on this project and offers to resume them.

A job is cut short when the app quit during it (the user said so when asked) or when the
process that watched it died; the project's job journal remembers it (see
engine.project.job_journal). Resume runs the job again with the parameters it noted; the
stages continue where they stopped. Dismiss forgets it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton

from engine.errors import MyCanvasError
from engine.jobs.journal import resumable as is_resumable
from engine.project.job_journal import JournalEntry

if TYPE_CHECKING:
    from desktop_app.state.jobs_bridge import JobsBridge
    from desktop_app.state.observable import AppState
    from desktop_app.widgets.jobs_panel import JobsPanel


def describe(entry: JournalEntry) -> str:
    when = entry.started_at.replace("T", " ")[:16]
    why = f" ({entry.reason})" if entry.reason else ""
    return f"“{entry.title or entry.name}” was interrupted (started {when}){why}."


class ResumeBar(QFrame):
    """Shows the oldest interrupted job; the next one follows when it is settled."""

    resume_requested = Signal(object)  # JournalEntry
    dismiss_requested = Signal(object)  # JournalEntry

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("resumeBar")
        self.setStyleSheet("#resumeBar { background: #fff4d6; border: 1px solid #e0c36b; }")
        self.entries: list[JournalEntry] = []
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.resume_button = QPushButton("Resume")
        self.dismiss_button = QPushButton("Dismiss")
        layout = QHBoxLayout(self)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.resume_button)
        layout.addWidget(self.dismiss_button)
        self.resume_button.clicked.connect(lambda: self._settle(self.resume_requested))
        self.dismiss_button.clicked.connect(lambda: self._settle(self.dismiss_requested))
        self.hide()

    def show_entries(self, entries: list[JournalEntry]) -> None:
        self.entries = list(entries)
        self._show_first()

    def _show_first(self) -> None:
        if not self.entries:
            self.hide()
            return
        entry = self.entries[0]
        more = f" {len(self.entries) - 1} more after this one." if len(self.entries) > 1 else ""
        resumable = is_resumable(entry.name)
        hint = " Resume continues where it stopped." if resumable else ""
        self.label.setText(describe(entry) + hint + more)
        self.resume_button.setVisible(resumable)
        self.show()

    def _settle(self, signal) -> None:
        if self.entries:
            signal.emit(self.entries.pop(0))
        self._show_first()


class InterruptedJobs(QObject):
    """The project's job journal as the window shows it when a project opens: the jobs cut
    short in the resume bar, the recent ones in the jobs list (so a build cut short by a quit
    is still listed, marked interrupted)."""

    message = Signal(str)

    def __init__(self, state: AppState, jobs: JobsBridge, bar: ResumeBar, panel: JobsPanel,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state, self.jobs, self.bar, self.panel = state, jobs, bar, panel
        bar.resume_requested.connect(self.resume)
        bar.dismiss_requested.connect(lambda entry: self.settle(entry, "dismissed"))

    def show(self) -> None:
        project = self.state.project
        try:
            entries = project.interrupted_jobs() if project is not None else []
            history = project.journal(limit=20) if project is not None else []
        except MyCanvasError as exc:
            self.message.emit(f"Could not read the job journal: {exc}")
            entries, history = [], []
        self.bar.show_entries(entries)
        self.panel.show_history(history, {e.job_id for e in entries})

    def settle(self, entry: Any, state: str) -> None:
        project = self.state.project
        if project is None:
            return
        try:
            project.settle_interrupted(entry.job_id, state)
        except MyCanvasError as exc:
            self.message.emit(str(exc))

    def resume(self, entry: Any) -> None:
        """Run the job again with the parameters it noted; the stages continue where they
        stopped, and the bridge refreshes the views it changes."""
        try:
            self.jobs.submit(entry.name, entry.resume_params, entry.title or entry.name)
        except MyCanvasError as exc:
            self.message.emit(f"Could not resume: {exc}")
            return
        self.settle(entry, "resumed")
