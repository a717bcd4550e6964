"""The training runs of a project as a table: id, status, steps done of the total, dataset
size, when it started; the selected one can be resumed (when it did not finish) or deleted.

What a row needs from the run's folder (the steps done, from the end of metrics.jsonl; the
dataset size, from dataset.json) is read off the GUI thread (`run_facts`), once per run and
state of the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from desktop_app.state.thumbnails import BackgroundLoader

COLUMNS = ("Run", "Status", "Steps", "Dataset", "Started")
STATUS_COLOUR = {"finished": QColor(27, 125, 58), "failed": QColor(179, 38, 30),
                 "cancelled": QColor(138, 90, 0), "interrupted": QColor(138, 90, 0),
                 "running": QColor(20, 90, 200)}
TAIL_BYTES = 8192
RunIdRole = Qt.ItemDataRole.UserRole


def last_step(metrics: Path) -> int:
    """The last step metrics.jsonl records (0 with none), from its last few kilobytes."""
    try:
        with open(metrics, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            tail = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return 0
    for line in reversed(tail):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            return int(record["step"])
    return 0


def run_facts(run_dir: str) -> dict[str, Any]:
    """Steps done, dataset size (items, or concepts of an extraction) and sample images."""
    root = Path(run_dir)
    size: int | None = None
    try:
        snapshot = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
        size = len(snapshot.get("items") or snapshot.get("concepts") or [])
    except (OSError, ValueError, AttributeError):
        pass
    samples = sorted(str(p) for p in (root / "samples").glob("step-*.png"))
    return {"steps": last_step(root / "metrics.jsonl"), "dataset": size, "samples": samples}


def run_total_steps(run: Any) -> int | None:
    """The step budget a run's config records ({"train": {"steps": ...}, ...}; an extraction
    run keeps its settings under its own key)."""
    config = run.config if isinstance(run.config, dict) else {}
    for part in (config, *[v for v in config.values() if isinstance(v, dict)]):
        if isinstance(part.get("steps"), int) and not isinstance(part["steps"], bool):
            return int(part["steps"])
    return None


class RunsTable(QTableWidget):
    """Runs, newest first; `run_selected(run_id or None)`."""

    run_selected = Signal(object)

    def __init__(self, loader: BackgroundLoader) -> None:
        super().__init__(0, len(COLUMNS))
        self.setObjectName("runsTable")
        self.loader = loader
        self.setHorizontalHeaderLabels(list(COLUMNS))
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.horizontalHeader()
        for column in range(len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.runs: list[Any] = []
        self.facts: dict[int, dict[str, Any]] = {}
        self._keys: dict[object, int] = {}
        loader.ready.connect(self._facts_ready)
        self.itemSelectionChanged.connect(lambda: self.run_selected.emit(self.selected_run()))

    def selected_run(self) -> int | None:
        rows = {i.row() for i in self.selectedIndexes()}
        if not rows:
            return None
        return self.item(min(rows), 0).data(RunIdRole)

    def show_runs(self, project: Any, runs: list[Any]) -> None:
        """Show `runs` (of `project`), keeping the selected run selected."""
        chosen = self.selected_run()
        self.runs = list(reversed(runs))
        blocked = self.blockSignals(True)
        self.setRowCount(0)
        for run in self.runs:
            row = self.rowCount()
            self.insertRow(row)
            started = (run.created_at or "").replace("T", " ")[:16]
            cells = [f"#{run.id}", run.status, "", "", started]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(RunIdRole, run.id)
                self.setItem(row, column, item)
            self.item(row, 1).setForeground(STATUS_COLOUR.get(run.status, QColor(90, 90, 90)))
            if run.output_dir and project is not None:
                # Keyed by the run's state too: a running run's steps are asked for again.
                key = ("run-facts", str(project.root), run.id, run.status,
                       self.facts.get(run.id, {}).get("steps"))
                self._keys[key] = run.id
                found = self.loader.request(key, run_facts, str(project.abspath(run.output_dir)))
                if found is not None:
                    self.facts[run.id] = found
            self._fill(row, run)
            if run.id == chosen:
                self.selectRow(row)
        self.blockSignals(blocked)
        if self.selected_run() != chosen:
            self.run_selected.emit(self.selected_run())

    def refresh_facts(self, project: Any, run_id: int) -> None:
        """Read a running run's facts again (its steps move)."""
        run = next((r for r in self.runs if r.id == run_id), None)
        if run is None or not run.output_dir:
            return
        key = ("run-facts", str(project.root), run.id, run.status, "live",
               self.facts.get(run.id, {}).get("steps"))
        self._keys[key] = run.id
        self.loader.request(key, run_facts, str(project.abspath(run.output_dir)), fresh=True)

    def _facts_ready(self, key: object, facts: object) -> None:
        run_id = self._keys.pop(key, None)
        if run_id is None or not isinstance(facts, dict):
            return
        self.facts[run_id] = facts
        for row, run in enumerate(self.runs):
            if run.id == run_id:
                self._fill(row, run)

    def _fill(self, row: int, run: Any) -> None:
        facts = self.facts.get(run.id)
        total = run_total_steps(run)
        if facts is None:
            return
        done = facts["steps"]
        self.item(row, 2).setText(f"{done} / {total}" if total else str(done))
        size = facts["dataset"]
        noun = "concepts" if run.kind == "em-extract" else "items"
        self.item(row, 3).setText("" if size is None else f"{size} {noun}")
