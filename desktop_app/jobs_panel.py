"""A list of jobs: queued, running (progress, ETA, cancel, latest preview) and done (outcome)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.jobs import (
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobLog,
    JobPreview,
    JobProgress,
    JobQueued,
    JobStarted,
    format_eta,
)

PREVIEW_SIDE = 96


def show_preview(label: QLabel, event: JobPreview) -> None:
    """Show a job's preview PNG in `label`, scaled to the label's fixed size."""
    pixmap = QPixmap()
    if pixmap.loadFromData(event.png, "PNG"):
        label.setPixmap(pixmap.scaled(
            label.width(), label.height(), Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation))
        label.setToolTip(event.caption)
        label.show()


def eta_text(seconds: float | None) -> str:
    return "estimating…" if seconds is None else f"{format_eta(seconds)} left"


class JobRow(QWidget):
    cancel_requested = Signal(str)

    def __init__(self, job_id: str, title: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.finished = False
        self.title = QLabel(title)
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
        self.detail = QLabel()
        self.detail.setObjectName("jobDetail")
        self.detail.setWordWrap(True)
        self.detail.hide()
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.state)
        top.addWidget(self.cancel)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.addLayout(top)
        lay.addWidget(self.bar)
        lay.addWidget(self.detail)
        lay.addWidget(self.preview)

    def apply(self, event: JobEvent) -> None:
        if isinstance(event, JobStarted):
            self.state.setText("running")
        elif isinstance(event, JobProgress):
            self.bar.setRange(0, max(1, event.total))
            self.bar.setValue(min(event.step, event.total))
            self.bar.setFormat(f"%p%  {event.message}")
            self.bar.setToolTip(event.message)
            self.state.setText(eta_text(event.eta_seconds))
        elif isinstance(event, JobPreview):
            show_preview(self.preview, event)
        elif isinstance(event, JobLog):
            self.setToolTip(event.text)
            if event.level == "warning":
                self.detail.setText(event.text)
                self.detail.show()
        elif isinstance(event, JobFinished | JobFailed | JobCancelled):
            self.finished = True
            self.cancel.setEnabled(False)
            self.bar.setRange(0, 1)
            self.bar.setValue(1 if isinstance(event, JobFinished) else 0)
            if isinstance(event, JobFinished):
                self.state.setText("done")
                self.bar.setFormat("done")
            elif isinstance(event, JobCancelled):
                self.state.setText("cancelled")
                self.bar.setFormat("cancelled")
            else:
                self.state.setText("failed")
                self.bar.setFormat("failed")
                self.detail.setText(event.reason)
                self.detail.setStyleSheet("color: #b3261e")
                self.detail.show()
                self.setToolTip(event.reason)


class JobsPanel(QWidget):
    cancel_requested = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, JobRow] = {}
        self._layout = QVBoxLayout(self)
        self._layout.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.clear_button = QPushButton("Clear finished")
        self.clear_button.clicked.connect(self.clear_finished)
        self.clear_button.setEnabled(False)
        self._empty = QLabel("No jobs yet.")
        self._layout.addWidget(self.clear_button)
        self._layout.addWidget(self._empty)

    def on_event(self, event: JobEvent) -> None:
        row = self.rows.get(event.job_id)
        if row is None:
            title = event.title if isinstance(event, JobQueued | JobStarted) else event.job_id
            row = JobRow(event.job_id, title)
            row.cancel_requested.connect(self.cancel_requested)
            self.rows[event.job_id] = row
            self._empty.hide()
            self._layout.insertWidget(1, row)
        row.apply(event)
        self.clear_button.setEnabled(any(r.finished for r in self.rows.values()))

    def clear_finished(self) -> None:
        for job_id in [j for j, row in self.rows.items() if row.finished]:
            row = self.rows.pop(job_id)
            self._layout.removeWidget(row)
            row.deleteLater()
        self._empty.setVisible(not self.rows)
        self.clear_button.setEnabled(False)
