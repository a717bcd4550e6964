"""A list of jobs: queued, running (progress, ETA, cancel, latest preview) and done (what came
of it, in plain words). A job's notes (the segmenter it fell back to, ...) are shown once,
collapsed to their first line; a note an earlier job already showed is not repeated. When a
project opens, the jobs its journal remembers are listed too, so a build cut short by a quit is
still there, marked interrupted."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.state.job_state import JobState
from desktop_app.state.observable import Bindings
from desktop_app.state.plain_words import (
    failure_text,
    for_window,
    import_outcome,
    is_model_missing,
)
from engine.jobs import (
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobLog,
    JobPreview,
    JobQueued,
    JobStarted,
)

PREVIEW_SIDE = 96
FAILED_STYLE = "color: #b3261e"
ENDED_TEXT = {"finished": "done", "failed": "failed", "cancelled": "cancelled",
              "interrupted": "interrupted", "running": "interrupted", "resumed": "resumed",
              "dismissed": "interrupted, dismissed"}


def show_preview(label: QLabel, event: JobPreview) -> None:
    """Show a job's preview PNG in `label`, scaled to the label's fixed size."""
    pixmap = QPixmap()
    if pixmap.loadFromData(event.png, "PNG"):
        label.setPixmap(pixmap.scaled(
            label.width(), label.height(), Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation))
        label.setToolTip(event.caption)
        label.show()


def outcome_text(result: Any) -> str:
    """What a finished job did, in one plain line (an import says why nothing was added)."""
    imported = getattr(result, "imported", None)
    if isinstance(imported, list) and hasattr(result, "duplicates"):
        return import_outcome(result)
    summary = result.summary() if hasattr(result, "summary") else ""
    return (summary or "").splitlines()[0] if summary else ""


class JobRow(QWidget):
    cancel_requested = Signal(str)
    models_requested = Signal()

    def __init__(self, job_id: str, title: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.finished = False
        self.from_journal = False  # a row of an earlier session, read from the journal
        self.job_state: JobState | None = None
        self.bindings = Bindings()
        self.note_text = ""
        self.title = QLabel(title)
        self.title.setObjectName("jobTitle")
        self.title.setWordWrap(True)
        self.state = QLabel("queued")
        self.state.setObjectName("jobState")
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)
        self.bar.setTextVisible(True)
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(lambda: self.cancel_requested.emit(self.job_id))
        self.preview = QLabel()
        self.preview.setFixedSize(PREVIEW_SIDE, PREVIEW_SIDE)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.hide()
        self.outcome = QLabel()
        self.outcome.setObjectName("jobOutcome")
        self.outcome.setWordWrap(True)
        self.outcome.hide()
        # The job's note: one line, and the rest behind "more".
        self.detail = QLabel()
        self.detail.setObjectName("jobDetail")
        self.detail.setWordWrap(True)
        self.detail.hide()
        self.more = QToolButton()
        self.more.setObjectName("jobDetailToggle")
        self.more.setCheckable(True)
        self.more.setText("more")
        self.more.setAutoRaise(True)
        self.more.toggled.connect(self._show_note)
        self.more.hide()
        self.models = QPushButton("Models…")
        self.models.setToolTip("See which models are missing, download them or choose the "
                               "folder that holds them")
        self.models.clicked.connect(self.models_requested)
        self.models.hide()
        # Narrow enough for a narrow dock: the title wraps beside Cancel, the state has a
        # line of its own under the bar (beside the title it was cut to "don").
        self.state.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.cancel, 0, Qt.AlignmentFlag.AlignTop)
        note = QHBoxLayout()
        note.addWidget(self.detail, 1)
        note.addWidget(self.more, 0, Qt.AlignmentFlag.AlignTop)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.addLayout(top)
        lay.addWidget(self.bar)
        lay.addWidget(self.state)
        lay.addWidget(self.outcome)
        lay.addLayout(note)
        lay.addWidget(self.models)
        lay.addWidget(self.preview)

    def set_note(self, text: str, collapsed: bool = True) -> None:
        self.note_text = text
        self.more.setVisible("\n" in text or len(text) > 90)
        self.more.setChecked(not collapsed)
        self._show_note(not collapsed)
        self.detail.show()

    def _show_note(self, expanded: bool) -> None:
        text = self.note_text
        if not expanded:  # the first sentence, and an ellipsis when there is more
            first = text.split("\n", 1)[0].split(". ", 1)[0].rstrip(".")
            if len(first) > 90:
                first = first[:89]
            text = first + ("…" if first != text.rstrip(".") else "")
        self.detail.setText(text)
        self.more.setText("less" if expanded else "more")

    def bind(self, job: JobState) -> None:
        """Show the job's progress, time left and preview from its JobState (the object the
        page working on its data binds to as well)."""
        self.job_state = job
        self.bindings.on(job, "line", lambda _l: self._show_progress(job))
        self.bindings.on(job, "preview", lambda p: p is not None and show_preview(self.preview, p))
        if job.line:
            self._show_progress(job)

    def _show_progress(self, job: JobState) -> None:
        if self.finished:
            return
        self.bar.setRange(0, max(1, job.total))
        self.bar.setValue(min(job.step, job.total))
        self.bar.setFormat(f"%p%  {job.message}")
        self.bar.setToolTip(job.message)
        self.state.setText(job.eta)

    def apply(self, event: JobEvent) -> None:
        if isinstance(event, JobStarted):
            self.state.setText("running")
        elif isinstance(event, JobLog):
            self.setToolTip(event.text)
        elif isinstance(event, JobFinished | JobFailed | JobCancelled):
            self.end("finished" if isinstance(event, JobFinished) else
                     "cancelled" if isinstance(event, JobCancelled) else "failed")
            if isinstance(event, JobFinished):
                text = outcome_text(event.result)
                self.outcome.setText(text)
                self.outcome.setVisible(bool(text))
            elif isinstance(event, JobFailed):
                text = failure_text(event.reason, event.fields)
                self.set_note(text, collapsed=False)
                self.detail.setStyleSheet(FAILED_STYLE)
                self.setToolTip(text)
                self.models.setVisible(is_model_missing(event.reason, event.fields))

    def end(self, state: str) -> None:
        self.finished = True
        self.bindings.clear()
        self.cancel.setEnabled(False)
        self.cancel.hide()
        self.bar.setRange(0, 1)
        self.bar.setValue(1 if state == "finished" else 0)
        text = ENDED_TEXT.get(state, state)
        self.state.setText(text)
        self.bar.setFormat(text)


class JobsPanel(QWidget):
    cancel_requested = Signal(str)
    models_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, JobRow] = {}
        self._notes_shown: set[str] = set()
        self._layout = QVBoxLayout(self)
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.clicked.connect(self.clear_finished)
        self.clear_button.setEnabled(False)
        self._empty = QLabel("No jobs yet.")
        self._layout.addWidget(self.clear_button)
        self._layout.addWidget(self._empty)
        # A stretch below keeps the rows at the top. (Aligning the layout to the top instead
        # gives wrapped labels their one-line height: the text is cut off.)
        self._layout.addStretch(1)

    def _row(self, job_id: str, title: str) -> JobRow:
        row = self.rows.get(job_id)
        if row is None:
            row = JobRow(job_id, title)
            row.cancel_requested.connect(self.cancel_requested)
            row.models_requested.connect(self.models_requested)
            self.rows[job_id] = row
            self._empty.hide()
            self._layout.insertWidget(1, row)
        return row

    def track(self, job: JobState) -> None:
        """Show the job's row bound to its JobState (JobsBridge.job_added)."""
        self._row(job.job_id, job.title).bind(job)

    def on_event(self, event: JobEvent) -> None:
        title = event.title if isinstance(event, JobQueued | JobStarted) else event.job_id
        row = self._row(event.job_id, title)
        row.apply(event)
        if isinstance(event, JobLog) and event.level == "warning":
            self._note(row, event.text)
        self.clear_button.setEnabled(any(r.finished for r in self.rows.values()))

    def _note(self, row: JobRow, text: str) -> None:
        """A warning is shown once: collapsed on the first job that gives it, a short
        reference on later ones."""
        if text in self._notes_shown:
            row.set_note(f"{text.split(':', 1)[0]} (as above)")
            row.more.hide()
            return
        self._notes_shown.add(text)
        row.set_note(text)

    def show_history(self, entries: list[Any], interrupted: set[str]) -> None:
        """The jobs a project's journal remembers (newest first), as ended rows; the rows of
        another project's history go."""
        for job_id in [j for j, row in self.rows.items() if row.from_journal]:
            self._remove(job_id)
        for entry in reversed(entries):
            if entry.job_id in self.rows:
                continue
            row = self._row(entry.job_id, entry.title or entry.name)
            row.from_journal = True
            state = "interrupted" if entry.job_id in interrupted else entry.state
            row.end(state)
            when = (entry.ended_at or entry.started_at).replace("T", " ")[:16]
            row.outcome.setText(f"{ENDED_TEXT.get(state, state)} {when}"
                                + (f": {for_window(entry.reason)}" if entry.reason else ""))
            row.outcome.show()
        self.clear_button.setEnabled(any(r.finished for r in self.rows.values()))

    def clear_finished(self) -> None:
        for job_id in [j for j, row in self.rows.items() if row.finished]:
            self._remove(job_id)
        self.clear_button.setEnabled(False)

    def _remove(self, job_id: str) -> None:
        row = self.rows.pop(job_id)
        self._layout.removeWidget(row)
        row.deleteLater()
        self._empty.setVisible(not self.rows)
