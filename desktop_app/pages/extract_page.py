"""The Extract step: several concepts learned from ONE photo where they appear together (EM
extraction, job "extract"). Choose a photo (one of the project's, or a file), name each
concept with its class word and draw its box or click on it; watch each concept's mask change
iteration by iteration; fix a mask (the mask editor) and run again from the fixed masks. The
concepts join the concept list (asked first when they are new to the project: they can stay
only inside the run), and the run can generate pictures (Generate step).

While the job runs, a timer reads the run's finished iterations (runs/<id>/masks/iter-NNN,
engine.extract.read_iterations) off the GUI thread; extract_iterations.IterationView shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_app.state.job_state import JobState
from desktop_app.state.jobs_bridge import JobsBridge
from desktop_app.state.observable import AppState, Bindings
from desktop_app.state.plain_words import failure_text, for_window
from desktop_app.state.thumbnails import BackgroundLoader, render_photo
from desktop_app.widgets.box_canvas import BoxCanvas
from desktop_app.widgets.concept_edit import KEEP_IN_RUN, add_concepts_box
from desktop_app.widgets.extract_iterations import IterationView
from desktop_app.widgets.mask_editor import MaskEditor
from desktop_app.widgets.params_form import ParamsForm, field_specs
from desktop_app.widgets.photo_sources import IMAGE_FILTER
from engine.errors import MyCanvasError
from engine.extract import EXTRACT, read_iterations
from engine.extract.config import ExtractConfig
from engine.jobs import JobCancelled, JobEvent, JobFailed, JobFinished

RUN_KIND = "em-extract"
PHOTO_SIDE = 900
FOLLOW_MS = 500
ROW_KEY = Qt.ItemDataRole.UserRole  # on a row's name cell: the key of its box on the canvas


class ExtractPage(QWidget):
    def __init__(self, state: AppState, jobs: JobsBridge, thumbs: BackgroundLoader) -> None:
        super().__init__()
        self.setObjectName("extractPage")
        self.state, self.jobs, self.thumbs = state, jobs, thumbs
        self.job: str | None = None
        self.run_id: int | None = None
        self._runs_before = 0
        self.photo_size = (1, 1)
        self.photo_file: str | None = None  # a file chosen from disk, not in the project
        self.iterations: list[Any] = []
        self.result_concepts: list[dict[str, Any]] = []
        self._keys: set[object] = set()
        self._rows_made = 0  # numbers the rows' keys: a key is never reused
        self.photo = QComboBox()
        self.photo.setObjectName("extractPhoto")
        self.photo.currentIndexChanged.connect(lambda _i: self._photo_chosen())
        self.file_button = QPushButton("Photo file…")
        self.file_button.clicked.connect(self._choose_file)
        self.table = QTableWidget(0, 2)
        self.table.setObjectName("extractConcepts")
        self.table.setHorizontalHeaderLabels(["Name", "Class word (cat, mug…)"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setMaximumHeight(150)
        self.table.itemChanged.connect(lambda _i: self._names_changed())
        self.table.currentCellChanged.connect(lambda row, *_a: self._row_chosen(row))
        add = QPushButton("Add a concept")
        add.clicked.connect(self._add_by_hand)
        remove = QPushButton("Remove")
        remove.clicked.connect(self._remove_concept)
        self.canvas = BoxCanvas(points=True)
        self.canvas.setObjectName("extractCanvas")
        # The run's settings, made from ExtractConfig's fields (help, bounds, defaults).
        self.settings_form = ParamsForm(field_specs(
            ExtractConfig, ["steps", "iterations"],
            labels={"steps": "Steps", "iterations": "Mask updates"}), compact=True)
        self.steps = self.settings_form.widgets["steps"]
        self.rounds = self.settings_form.widgets["iterations"]
        assert isinstance(self.steps, QSpinBox) and isinstance(self.rounds, QSpinBox)
        self.steps.setObjectName("extractSteps")
        self.rounds.setObjectName("extractIterations")
        self.start_button = QPushButton("Extract")
        self.start_button.setObjectName("extractButton")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(lambda: self.job and self.jobs.cancel(self.job))
        self.again_button = QPushButton("Run again from the masks")
        self.again_button.setObjectName("extractAgain")
        self.again_button.setToolTip("Extract the same concepts again, starting from their "
                                     "current masks (the ones you fixed)")
        self.again_button.setEnabled(False)
        self.again_button.clicked.connect(self.run_again)
        self.fix_choice = QComboBox()
        self.fix_button = QPushButton("Fix this mask…")
        self.fix_button.setObjectName("extractFix")
        self.fix_button.setEnabled(False)
        self.fix_button.clicked.connect(self.fix_mask)
        self.status = QLabel("Choose a photo, name the concepts in it, and draw a box around "
                             "each (or click on it).")
        self.status.setObjectName("extractStatus")
        self.status.setWordWrap(True)
        self.view = IterationView(thumbs)
        self.timer = QTimer(self)
        self.timer.setObjectName("extractFollow")
        self.timer.setInterval(FOLLOW_MS)
        self.timer.timeout.connect(self.follow)
        thumbs.ready.connect(self._ready)
        self.editor = MaskEditor(state, jobs, thumbs)
        self.editor.closed.connect(self._editor_closed)

        photo_row = QHBoxLayout()
        photo_row.addWidget(QLabel("Photo"))
        photo_row.addWidget(self.photo, 1)
        photo_row.addWidget(self.file_button)
        concept_buttons = QHBoxLayout()
        concept_buttons.addWidget(add)
        concept_buttons.addWidget(remove)
        concept_buttons.addStretch(1)
        run_row = QHBoxLayout()
        for widget in (self.settings_form, self.start_button, self.cancel_button):
            run_row.addWidget(widget)
        run_row.addStretch(1)
        left = QVBoxLayout()
        left.addLayout(photo_row)
        left.addWidget(self.table)
        left.addLayout(concept_buttons)
        left.addWidget(self.canvas, 1)
        left.addLayout(run_row)
        right = QVBoxLayout()
        right.addWidget(QLabel("<b>Masks, iteration by iteration</b>"))
        right.addWidget(self.view, 1)
        fix_row = QHBoxLayout()
        fix_row.addWidget(self.fix_choice, 1)
        fix_row.addWidget(self.fix_button)
        fix_row.addWidget(self.again_button)
        right.addLayout(fix_row)
        main = QWidget()
        row = QHBoxLayout(main)
        row.addLayout(left, 3)
        row.addLayout(right, 2)
        column = QVBoxLayout()
        column.addWidget(main, 1)
        column.addWidget(self.status)
        holder = QWidget()
        holder.setLayout(column)
        self.stack = QStackedWidget()
        self.stack.addWidget(holder)
        self.stack.addWidget(self.editor)
        self.main_view = holder
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.stack)
        self.bindings = Bindings()
        self.job_bindings = Bindings()  # to the running job's JobState
        jobs.job_added.connect(self._job_added)
        self.bindings.on(state, "project", lambda _p: self._project_changed())
        self.bindings.on(state, "photos_rev", lambda _v: self._fill_photos())
        self._project_changed()

    # ------------------------------------------------------------------ input

    def _project_changed(self) -> None:
        self.result_concepts, self.run_id = [], None
        self.view.set_iterations([], busy=False)
        self._fill_photos()

    def _fill_photos(self) -> None:
        project = self.state.project
        chosen = self.photo.currentData()
        blocked = self.photo.blockSignals(True)
        self.photo.clear()
        seen: set[str] = set()
        for photo in [] if project is None else project.photos():
            if photo.sha256 not in seen:  # one photo shared by several concepts: once
                seen.add(photo.sha256)
                self.photo.addItem(f"{photo.original_name} ({photo.width}×{photo.height})",
                                   photo.id)
        if self.photo_file:  # a file chosen from disk stays offered
            name = Path(self.photo_file).name
            self.photo.insertItem(0, f"{name} (file, {self.photo_size[0]}×{self.photo_size[1]})",
                                  self.photo_file)
        self.photo.setCurrentIndex(max(0, self.photo.findData(chosen)))
        self.photo.blockSignals(blocked)
        if self.photo.currentData() != chosen or chosen is None:
            self._photo_chosen()

    def _choose_file(self) -> None:
        path = QFileDialog.getOpenFileName(self, "A photo with several things in it", "",
                                           IMAGE_FILTER)[0]
        if path:
            self.use_file(Path(path))

    def use_file(self, path: Path) -> None:
        from PIL import Image

        with Image.open(path) as im:
            self.photo_size = im.size
        self.photo_file = str(path)
        blocked = self.photo.blockSignals(True)
        index = self.photo.findData(str(path))
        if index < 0:
            self.photo.insertItem(0, f"{path.name} (file, {self.photo_size[0]}×"
                                     f"{self.photo_size[1]})", str(path))
            index = 0
        self.photo.setCurrentIndex(index)
        self.photo.blockSignals(blocked)
        self._load_photo(str(path))

    def _photo_chosen(self) -> None:
        project, photo_id = self.state.project, self.photo.currentData()
        self.photo_file = None
        if isinstance(photo_id, str):  # a file chosen earlier
            self.use_file(Path(photo_id))
            return
        if project is None or photo_id is None:
            self.canvas.set_image(None)
            return
        photo = project.photo(photo_id)
        self.photo_size = (photo.width, photo.height)
        self._load_photo(str(project.abspath(photo.file)))

    def _load_photo(self, path: str) -> None:
        key = ("extract-photo", path, PHOTO_SIDE)
        self._keys.add(key)
        found = self.thumbs.request(key, render_photo, path, None, PHOTO_SIDE)
        if found is not None:
            self._ready(key, found)

    def add_concept(self, name: str, class_word: str) -> None:
        row = self.table.rowCount()
        blocked = self.table.blockSignals(True)
        self.table.insertRow(row)
        self._rows_made += 1
        name_cell = QTableWidgetItem(name)
        name_cell.setData(ROW_KEY, f"row-{self._rows_made}")
        self.table.setItem(row, 0, name_cell)
        self.table.setItem(row, 1, QTableWidgetItem(class_word))
        self.table.blockSignals(blocked)
        self._names_changed()
        self.table.setCurrentCell(row, 0)

    def _add_by_hand(self) -> None:
        """"Add a concept": a new row whose name cell is already being edited, so typing
        goes straight into it."""
        self.add_concept("", "")
        row = self.table.rowCount() - 1
        self.table.setFocus()
        self.table.editItem(self.table.item(row, 0))

    def row_key(self, row: int) -> str:
        """The key of a row's box and clicks on the canvas: stable while the row is renamed."""
        cell = self.table.item(row, 0)
        return str(cell.data(ROW_KEY)) if cell is not None else f"row-?{row}"

    def _remove_concept(self) -> None:
        if self.table.currentRow() >= 0:
            self.table.removeRow(self.table.currentRow())
            self._names_changed()

    def names(self) -> list[tuple[str, str]]:
        out = []
        for row in range(self.table.rowCount()):
            cells = [self.table.item(row, c) for c in (0, 1)]
            out.append(tuple((c.text() if c else "").strip() for c in cells))
        return out  # type: ignore[return-value]

    def _names_changed(self) -> None:
        keys = [self.row_key(row) for row in range(self.table.rowCount())]
        self.canvas.set_names(keys, {key: name or f"concept {k + 1}"
                                     for k, (key, (name, _w)) in
                                     enumerate(zip(keys, self.names(), strict=True))})
        self._row_chosen(self.table.currentRow())

    def _row_chosen(self, row: int) -> None:
        if 0 <= row < len(self.canvas.names):
            self.canvas.set_current(self.canvas.names[row])

    def concepts_param(self) -> list[dict[str, Any]]:
        """EXTRACT's concepts: name, class word, and the box and clicks in photo pixels."""
        w, h = self.photo_size
        out = []
        for key, (name, word) in zip(self.canvas.names, self.names(), strict=True):
            marks = self.canvas.marks.get(key)
            entry: dict[str, Any] = {"name": name, "class_word": word}
            if marks is not None and marks.box is not None:
                x0, y0, x1, y1 = marks.box
                entry["box"] = [x0 * w, y0 * h, x1 * w, y1 * h]
            if marks is not None and marks.points:
                entry["points"] = [[x * w, y * h] for x, y in marks.points]
                entry["labels"] = list(marks.labels)
            out.append(entry)
        return out

    # ------------------------------------------------------------------ the job

    def start(self) -> None:
        photo = self.photo_file or (str(self.photo.currentData())
                                    if self.photo.currentData() is not None else None)
        self._submit(self.concepts_param(), photo)

    def run_again(self) -> None:
        """The same concepts on the same photo, from their current masks (no boxes)."""
        if self.result_concepts:
            concepts = [{"name": c["name"], "class_word": c["class_word"]}
                        for c in self.result_concepts]
            self._submit(concepts, str(self.result_concepts[0]["photo_id"]))

    def _config(self) -> dict[str, Any]:
        """The form's settings; mask updates at most one per step, a checkpoint per quarter."""
        values = self.settings_form.values()
        return {**values, "iterations": min(values["iterations"], values["steps"]),
                "checkpoint_every": max(1, values["steps"] // 4)}

    def _submit(self, concepts: list[dict[str, Any]], photo: str | None) -> None:
        project = self.state.project
        if project is None or self.job is not None:
            return
        new = [str(c["name"]) for c in concepts
               if project.concept_by_name(str(c.get("name", ""))) is None]
        choice = self.ask_add_concepts(new) if new else "add"
        if choice is None:
            return
        try:
            params = self.state.job_params(
                EXTRACT, photo=photo, concepts=concepts, start_from_masks=True,
                add_concepts=choice != KEEP_IN_RUN, config=self._config())
            handle = self.jobs.submit(EXTRACT, params, on_event=self._job_event)
        except MyCanvasError as exc:
            self.status.setText(for_window(str(exc)))
            return
        self.job, self.run_id = handle.job_id, None
        self._runs_before = max((r.id for r in project.runs()), default=0)
        self.view.set_iterations([], busy=True)
        self.start_button.setEnabled(False)
        self.again_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("Starting: loading the model…")
        self.job_bindings.on(self.jobs.states[handle.job_id], "line", self.status.setText)
        self.timer.start()

    def _job_added(self, job: JobState) -> None:
        """An extraction on this project queued elsewhere in the window (the resume bar) is
        shown here as one started here. Looked at once the queueing is over, when a job this
        page started has its id in `self.job`."""
        QTimer.singleShot(0, self, lambda: self._adopt(job))

    def _adopt(self, job: JobState) -> None:
        project = self.state.project
        if self.job is not None or project is None or \
                not job.works_on(EXTRACT.name, project.root) or \
                not self.jobs.listen(job.job_id, self._job_event):
            return
        run_id = job.params.get("run_id")
        self.job, self.run_id = job.job_id, run_id
        self._runs_before = max((r.id for r in project.runs()), default=0)
        self.view.set_iterations([], busy=True)
        self.start_button.setEnabled(False)
        self.again_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(job.line or f"Resuming extraction run {run_id}…")
        self.job_bindings.on(job, "line", self.status.setText)
        self.timer.start()

    def ask_add_concepts(self, names: list[str]) -> str | None:
        """Add the new concepts to the project, or keep them in the run (None: cancel)."""
        box, meanings = add_concepts_box(names, self)
        box.exec()
        return meanings.get(box.clickedButton())

    def _job_event(self, event: JobEvent) -> None:
        if isinstance(event, JobFinished | JobFailed | JobCancelled):
            self.job_bindings.clear()
            self.job = None
            self.timer.stop()
            self.follow()
            self.start_button.setEnabled(True)
            self.cancel_button.setEnabled(False)
            if isinstance(event, JobFinished):
                self.run_id = event.result.run_id
                self.result_concepts = list(event.result.concepts)
                self.status.setText(event.result.summary().splitlines()[0] + " The concepts "
                                    "are in the concept list; generate with this run.")
                if not event.result.added_to_project:  # their records left with them
                    self.result_concepts = []
                    self.status.setText(event.result.summary().splitlines()[0] + " The "
                                        "concepts are kept only inside this run: generate "
                                        "with it.")
            elif isinstance(event, JobFailed):
                self.status.setText(failure_text(event.reason, event.fields))
            else:
                self.status.setText("Cancelled. The run can be resumed from the Jobs list.")
            self._fill_fix_choice()

    def follow(self) -> None:
        project = self.state.project
        if project is None:
            return
        if self.run_id is None:
            newer = [r.id for r in project.runs(RUN_KIND) if r.id > self._runs_before]
            if not newer:
                return
            self.run_id = newer[0]
        run_dir = str(project.root / "runs" / str(self.run_id))
        key = ("extract-iterations", run_dir, len(self.view.iterations), self.job is None)
        self._keys.add(key)
        self.thumbs.request(key, read_iterations, run_dir, fresh=True)

    def _ready(self, key: object, result: object) -> None:
        if key not in self._keys:
            return
        self._keys.discard(key)
        kind = key[0] if isinstance(key, tuple) else ""
        if kind == "extract-photo":
            self.canvas.set_image(result)  # type: ignore[arg-type]
        elif kind == "extract-iterations" and isinstance(result, list) and \
                len(result) != len(self.view.iterations):
            self.view.set_iterations(result, busy=self.job is not None)

    # ------------------------------------------------------------------ fixing a mask

    def _fill_fix_choice(self) -> None:
        self.fix_choice.clear()
        for concept in self.result_concepts:
            self.fix_choice.addItem(f"{concept['name']} {concept['token']}",
                                    concept["photo_id"])
        self.fix_button.setEnabled(bool(self.result_concepts))
        self.again_button.setEnabled(bool(self.result_concepts) and self.job is None)

    def fix_mask(self) -> None:
        photo_id = self.fix_choice.currentData()
        if photo_id is None:
            return
        try:
            self.editor.open_photo(int(photo_id))
        except MyCanvasError as exc:
            self.status.setText(str(exc))
            return
        self.stack.setCurrentWidget(self.editor)

    def _editor_closed(self) -> None:
        self.stack.setCurrentWidget(self.main_view)
        self.status.setText("Mask fixed. Press “Run again from the masks” to go on from it.")

    def teardown(self) -> None:
        self.job_bindings.clear()
        self.timer.stop()
        self.bindings.clear()
        self.editor.teardown()
