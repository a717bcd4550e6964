"""The one-click Personalize: a bar above the steps with a preset and the button. A click asks
the worker for the plan (job "personalize-plan": stages, counts, estimated time and disk, for
this project, profile and device) and shows it; Start runs the chain (job "personalize") with
exactly those parameters. While it runs the bar shows one progress across the stages, the
stage on now, the time left, the latest preview and a cancel; run again after a cancel, the
chain goes on from where it stopped (it redoes nothing that is done)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
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

from desktop_app.state.jobs_bridge import JobsBridge
from desktop_app.state.observable import AppState
from desktop_app.state.plain_words import for_window
from desktop_app.widgets.jobs_panel import show_preview
from engine.errors import MyCanvasError
from engine.jobs import (
    JobCancelled,
    JobEvent,
    JobFailed,
    JobFinished,
    JobPreview,
    JobProgress,
    progress_line,
)
from engine.personalize import format_bytes
from engine.personalize.jobs import PERSONALIZE, PERSONALIZE_PLAN, PRESETS

PRESET_TEXT = {"quick": "Quick", "standard": "Standard", "best": "Best"}


def seconds_text(seconds: float) -> str:
    s = round(seconds)
    if s < 90:
        return f"{s} s"
    if s < 5400:
        return f"{round(s / 60)} min"
    return f"{s / 3600:.1f} h"


def bytes_text(size: float | None) -> str:
    return "?" if size is None else format_bytes(int(size))


class PlanDialog(QDialog):
    """The plan before the chain starts; accepted: start it."""

    def __init__(self, plan: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("personalizePlan")
        self.setWindowTitle(f"Personalize ({PRESET_TEXT.get(plan.preset, plan.preset)})")
        self.resize(760, 420)
        self.plan = plan
        head = QLabel(f"<b>What Personalize will do now</b> with the “{plan.profile}” models "
                      f"on {plan.device}:")
        head.setWordWrap(True)
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("planStages")
        self.table.setHorizontalHeaderLabels(["Stage", "Makes now", "Time", "Disk"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for stage in plan.stages:
            row = self.table.rowCount()
            self.table.insertRow(row)
            if stage.runs:
                what = f"{stage.count} {stage.unit}" + (
                    f" ({stage.done} already there, kept)" if stage.done else "")
                cells = [stage.title, what, seconds_text(stage.seconds),
                         bytes_text(stage.disk_bytes)]
            else:
                cells = [stage.title, "nothing to do" + (f": {stage.note}" if stage.note else
                                                          ""), "", ""]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if not stage.runs:
                    item.setForeground(Qt.GlobalColor.gray)
                if stage.note:
                    item.setToolTip(stage.note)
                self.table.setItem(row, column, item)
        free = f" ({bytes_text(plan.free_disk_bytes)} free)" if plan.free_disk_bytes else ""
        self.total = QLabel(f"<b>In all: about {seconds_text(plan.seconds)}, "
                            f"{bytes_text(plan.disk_bytes)} on disk</b>{free}. "
                            f"<i>{plan.estimate}</i>")
        self.total.setObjectName("planTotal")
        self.total.setWordWrap(True)
        notes = []
        if plan.missing_models:
            size = (f" (about {bytes_text(plan.download_bytes)} to download)"
                    if plan.download_bytes else "")
            notes.append(f"⚠ Missing models: {', '.join(plan.missing_models)}{size}. Get them "
                         "first (Settings → Models…), or use the test models.")
        if plan.test_models:
            notes.append("⚠ Test models: every stage runs, but the pictures are noise.")
        notes += [f"⚠ {stage.title}: {stage.note}." for stage in plan.stages
                  if stage.runs and stage.rebuilds]
        if plan.nothing_to_do:
            notes.append("Everything this preset makes is there already.")
        self.notes = QLabel("<br>".join(notes))
        self.notes.setWordWrap(True)
        self.notes.setStyleSheet("color: #8a5a00")
        self.notes.setVisible(bool(notes))
        buttons = QDialogButtonBox()
        self.start_button = buttons.addButton("Start", QDialogButtonBox.ButtonRole.AcceptRole)
        self.start_button.setObjectName("planStart")
        self.start_button.setEnabled(not plan.nothing_to_do and not plan.missing_models)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(head)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.total)
        lay.addWidget(self.notes)
        lay.addWidget(buttons)


class PersonalizeBar(QWidget):
    finished = Signal(object)  # the Personalized result

    def __init__(self, state: AppState, jobs: JobsBridge) -> None:
        super().__init__()
        self.setObjectName("personalizeBar")
        self.state, self.jobs = state, jobs
        self.job: str | None = None
        self.plan_job: str | None = None
        self.dialog: PlanDialog | None = None
        self.preset = QComboBox()
        self.preset.setObjectName("personalizePreset")
        for name in PRESETS:
            self.preset.addItem(PRESET_TEXT.get(name, name), name)
        self.button = QPushButton("Personalize…")
        self.button.setObjectName("personalizeButton")
        self.button.setToolTip("Everything still missing, in one go: masks, layouts, the "
                               "dataset, training, pictures and their scores. Shows the plan "
                               "first.")
        self.button.clicked.connect(self.show_plan)
        self.button.setStyleSheet("font-weight: bold")
        self.bar = QProgressBar()
        self.bar.setObjectName("personalizeProgress")
        self.bar.setRange(0, 1000)
        self.bar.hide()
        self.stage = QLabel("One click from your photos to your own pictures.")
        self.stage.setObjectName("personalizeStage")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("personalizeCancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel)
        self.preview = QLabel()
        self.preview.setFixedSize(40, 40)
        self.preview.hide()
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 2, 6, 2)
        row.addWidget(self.preset)
        row.addWidget(self.button)
        row.addWidget(self.bar, 1)
        row.addWidget(self.stage, 1)
        row.addWidget(self.preview)
        row.addWidget(self.cancel_button)

    def params(self) -> Any:
        return self.state.job_params(PERSONALIZE, preset=self.preset.currentData())

    def show_plan(self) -> None:
        """Ask the worker for the plan; it is shown when it comes."""
        if self.state.project is None or self.job is not None or self.plan_job is not None:
            return
        try:
            params = self.params()
            handle = self.jobs.submit(PERSONALIZE_PLAN, params, on_event=self._plan_event)
        except MyCanvasError as exc:
            self.stage.setText(for_window(str(exc)))
            return
        self.plan_job = handle.job_id
        self.button.setEnabled(False)
        self.stage.setText("Working out the plan…")

    def _plan_event(self, event: JobEvent) -> None:
        if not isinstance(event, JobFinished | JobFailed | JobCancelled):
            return
        self.plan_job = None
        self.button.setEnabled(True)
        if not isinstance(event, JobFinished):
            self.stage.setText(for_window(getattr(event, "reason", "Cancelled.")))
            return
        self.stage.setText("")
        self.dialog = PlanDialog(event.result, self)
        self.dialog.accepted.connect(self.start)
        self.dialog.open()

    def start(self) -> None:
        if self.state.project is None or self.job is not None:
            return
        try:
            handle = self.jobs.submit(PERSONALIZE, self.params(), on_event=self._job_event)
        except MyCanvasError as exc:
            self.stage.setText(for_window(str(exc)))
            return
        self.job = handle.job_id
        self.button.setEnabled(False)
        self.preset.setEnabled(False)
        self.bar.setValue(0)
        self.bar.show()
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        self.stage.setText("Starting…")

    def cancel(self) -> None:
        if self.job is not None:
            self.jobs.cancel(self.job)
            self.cancel_button.setEnabled(False)
            self.stage.setText("Cancelling after the current step…")

    def _job_event(self, event: JobEvent) -> None:
        if isinstance(event, JobProgress):
            self.bar.setRange(0, max(1, event.total))
            self.bar.setValue(min(event.step, event.total))
            self.stage.setText(progress_line(event.fraction, event.eta_seconds, event.message))
            self.stage.setToolTip(event.message)
        elif isinstance(event, JobPreview):
            show_preview(self.preview, event)
        elif isinstance(event, JobFinished | JobFailed | JobCancelled):
            self.job = None
            self.button.setEnabled(True)
            self.preset.setEnabled(True)
            self.bar.hide()
            self.cancel_button.hide()
            self.preview.hide()
            if isinstance(event, JobFinished):
                self.stage.setText(event.result.summary().splitlines()[-1])
                self.finished.emit(event.result)
            elif isinstance(event, JobFailed):
                self.stage.setText(for_window(event.reason))
            else:
                self.stage.setText("Cancelled. Personalize again goes on from where it "
                                   "stopped: finished stages are kept.")
