"""The Layouts step: the project's layouts, the canvas editor of the chosen one, its scene and
caption, and "New layouts" which asks the planner (job "plan")."""

from __future__ import annotations

import math
from dataclasses import replace

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeySequence, QPixmap, QUndoGroup, QUndoStack
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from desktop_app.state.jobs_bridge import JobsBridge
from desktop_app.state.observable import AppState, Bindings
from desktop_app.state.plain_words import for_window
from desktop_app.state.project_reads import concept_cutout
from desktop_app.state.thumbnails import BackgroundLoader, render_cutout
from desktop_app.widgets.confirm import ask
from desktop_app.widgets.layout_editor import (
    MERGE_CAPTION,
    MERGE_SCENE,
    LayoutCanvas,
    LayoutDocument,
    LayoutEdit,
    clamp_box,
)
from engine.errors import MyCanvasError
from engine.jobs import JobCancelled, JobEvent, JobFailed, JobFinished
from engine.plan.jobs import PLAN
from engine.project import Layout, LayoutObject

CUTOUT_SIDE = 384
LAYOUT_ID = Qt.ItemDataRole.UserRole


class LayoutsPage(QWidget):
    def __init__(self, state: AppState, jobs: JobsBridge, thumbs: BackgroundLoader) -> None:
        super().__init__()
        self.state, self.jobs, self.thumbs = state, jobs, thumbs
        self.document = LayoutDocument(state)
        self.undo_group = QUndoGroup(self)
        self.stacks: dict[int, QUndoStack] = {}
        self.canvas = LayoutCanvas(self.document)
        self.canvas.edited.connect(self.push_edit)
        self._cutout_keys: dict[object, int] = {}
        self._plan_job: str | None = None

        # left: the layouts and the planner
        self.layout_list = QListWidget()
        self.layout_list.setObjectName("layoutList")
        self.layout_list.setWordWrap(True)
        self.layout_list.currentItemChanged.connect(self._chosen)
        self.plan_count = QSpinBox()
        self.plan_count.setRange(1, 50)
        self.plan_count.setValue(4)
        self.plan_count.setSuffix(" layouts")
        self.plan_button = QPushButton("New layouts (planner)")
        self.plan_button.setObjectName("planButton")
        self.plan_button.clicked.connect(self.plan_layouts)
        self.plan_status = QLabel()
        self.plan_status.setWordWrap(True)
        delete_layout = QPushButton("Delete layout")
        delete_layout.clicked.connect(self._confirm_delete_layout)
        left = QWidget()
        left_lay = QVBoxLayout(left)
        left_lay.addWidget(self.layout_list, 1)
        planner_row = QHBoxLayout()
        planner_row.addWidget(self.plan_count)
        planner_row.addWidget(self.plan_button, 1)
        left_lay.addLayout(planner_row)
        left_lay.addWidget(self.plan_status)
        left_lay.addWidget(delete_layout)

        # right: toolbar, canvas, scene and caption
        tools = QToolBar()
        self.undo_action = self.undo_group.createUndoAction(self, "Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = self.undo_group.createRedoAction(self, "Redo")
        self.redo_action.setShortcuts(QKeySequence.StandardKey.Redo)  # Ctrl+Y, Ctrl+Shift+Z
        tools.addAction(self.undo_action)
        tools.addAction(self.redo_action)
        tools.addSeparator()
        tools.addAction("Bring forward", lambda: self.canvas.restack(+1)).setToolTip("Ctrl+]")
        tools.addAction("Send backward", lambda: self.canvas.restack(-1)).setToolTip("Ctrl+[")
        tools.addAction("Delete", self.canvas.delete_selected).setToolTip("Delete")
        self.add_combo = QComboBox()
        self.add_combo.setObjectName("addConceptCombo")
        self.add_button = QPushButton("Add to the canvas")
        self.add_button.setObjectName("addToCanvas")
        self.add_button.clicked.connect(self.add_chosen_concept)
        self.aspect_lock = QCheckBox("Keep proportions")
        self.aspect_lock.setChecked(True)
        self.aspect_lock.setToolTip("Resizing keeps each cut-out's proportions; hold Shift to "
                                    "resize freely")
        self.aspect_lock.toggled.connect(self._lock_aspect)
        add_row = QHBoxLayout()
        add_row.addWidget(QLabel("Concept"))
        add_row.addWidget(self.add_combo)
        add_row.addWidget(self.add_button)
        add_row.addStretch(1)
        add_row.addWidget(self.aspect_lock)
        self.scene_edit = QLineEdit()
        self.scene_edit.setObjectName("sceneEdit")
        self.scene_edit.editingFinished.connect(self.commit_scene)
        self.caption_edit = QPlainTextEdit()
        self.caption_edit.setObjectName("captionEdit")
        self.caption_edit.setFixedHeight(64)
        self.caption_edit.installEventFilter(self)
        self.source_label = QLabel()
        self.source_label.setWordWrap(True)
        self.source_label.setStyleSheet("color: gray")
        form = QFormLayout()
        form.addRow("Background scene", self.scene_edit)
        form.addRow("Caption", self.caption_edit)
        right = QWidget()
        right_lay = QVBoxLayout(right)
        right_lay.addWidget(tools)
        right_lay.addLayout(add_row)
        right_lay.addWidget(self.canvas, 1)
        right_lay.addLayout(form)
        right_lay.addWidget(self.source_label)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([260, 700])
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(splitter)

        thumbs.ready.connect(self._cutout_ready)
        self.bindings = Bindings()
        self.bindings.bind(self.document, "layout", self._show)
        self.bindings.bind(self.document, "error", self.plan_status.setText)
        for name in ("project", "layouts_rev"):
            self.bindings.on(state, name, lambda _v: self.reload())
        for name in ("concepts_rev", "photos_rev"):
            self.bindings.on(state, name, lambda _v: self._load_concepts())
        self.reload()

    # ------------------------------------------------------------------ reading

    def reload(self) -> None:
        project = self.state.project
        current = self.document.layout.id if self.document.layout is not None else None
        self.layout_list.blockSignals(True)
        self.layout_list.clear()
        layouts = project.layouts() if project is not None else []
        for layout in layouts:
            item = QListWidgetItem(f"#{layout.id} · {layout.scene or 'no scene'}\n"
                                   f"{len(layout.objects)} object"
                                   f"{'s' * (len(layout.objects) != 1)}")
            item.setData(LAYOUT_ID, layout.id)
            item.setToolTip(layout.caption)
            self.layout_list.addItem(item)
        self.layout_list.blockSignals(False)
        ids = [layout.id for layout in layouts]
        if current not in ids:
            current = ids[0] if ids else None
        self._load_concepts()
        self.open_layout(current)

    def _planner_readiness(self, concept_count: int) -> None:
        """The planner needs two concepts; say so on the button until there are."""
        enough = concept_count >= 2
        self.plan_button.setEnabled(enough and self._plan_job is None)
        self.plan_button.setToolTip("" if enough else "The planner needs at least two concepts")

    def open_layout(self, layout_id: int | None) -> None:
        project = self.state.project
        if layout_id is None or project is None:
            self.document.layout = None
            self.undo_group.setActiveStack(None)
            return
        for row in range(self.layout_list.count()):
            if self.layout_list.item(row).data(LAYOUT_ID) == layout_id:
                self.layout_list.blockSignals(True)
                self.layout_list.setCurrentRow(row)
                self.layout_list.blockSignals(False)
        if layout_id not in self.stacks:
            stack = QUndoStack(self)
            self.stacks[layout_id] = stack
            self.undo_group.addStack(stack)
        self.undo_group.setActiveStack(self.stacks[layout_id])
        self.document.layout = project.layout(layout_id)

    def _chosen(self, item: QListWidgetItem | None, _previous: object) -> None:
        if item is not None:
            self.open_layout(item.data(LAYOUT_ID))

    def _load_concepts(self) -> None:
        project = self.state.project
        concepts = [] if project is None else project.concepts()
        self._planner_readiness(len(concepts))
        if project is None:
            self._fill_add_combo()
            return
        self.canvas.set_names({c.id: c.name for c in concepts})
        for concept in concepts:
            mask = concept_cutout(project, concept.id)
            if mask is None or not mask.cutout_file:
                continue
            key = ("cutout", mask.cutout_file, CUTOUT_SIDE)
            self._cutout_keys[key] = concept.id
            image = self.thumbs.request(key, render_cutout, str(project.abspath(mask.cutout_file)),
                                        CUTOUT_SIDE)
            if image is not None:
                self.canvas.set_pixmap(concept.id, QPixmap.fromImage(image))
        self._fill_add_combo()

    def _cutout_ready(self, key: object, image: object) -> None:
        concept_id = self._cutout_keys.get(key)
        if concept_id is not None:
            self.canvas.set_pixmap(concept_id, QPixmap.fromImage(image))

    def _show(self, layout: Layout | None) -> None:
        self.canvas.show_layout(layout)
        if not self.scene_edit.hasFocus():
            self.scene_edit.setText("" if layout is None else layout.scene)
        if not self.caption_edit.hasFocus():
            self.caption_edit.setPlainText("" if layout is None else layout.caption)
        self.source_label.setText("" if layout is None else f"Made by {layout.source}")
        for widget in (self.scene_edit, self.caption_edit, self.canvas):
            widget.setEnabled(layout is not None)
        self._fill_add_combo()

    def _fill_add_combo(self) -> None:
        layout, project = self.document.layout, self.state.project
        self.add_combo.clear()
        concepts = [] if project is None else project.concepts()
        if layout is not None:
            placed = {o.concept_id for o in layout.objects}
            for concept in concepts:
                if concept.id not in placed:
                    self.add_combo.addItem(concept.name, concept.id)
        why = ("Open or make a layout first" if layout is None else
               "Add concepts first (Concepts step)" if not concepts else
               "Every concept is on this layout already" if not self.add_combo.count() else "")
        for widget in (self.add_combo, self.add_button):
            widget.setEnabled(not why)
        self.add_button.setToolTip(why or "Put the chosen concept in the middle of the canvas")

    # ------------------------------------------------------------------ editing

    def push_edit(self, after: Layout, text: str, merge: int = -1) -> None:
        before = self.document.layout
        stack = self.undo_group.activeStack()
        if before is None or stack is None or after == before:
            return
        stack.push(LayoutEdit(self.document, before, after, text, merge))

    def commit_scene(self) -> None:
        layout = self.document.layout
        text = self.scene_edit.text().strip()
        if layout is not None and text != layout.scene:
            self.push_edit(replace(layout, scene=text), "Edit scene", MERGE_SCENE)

    def commit_caption(self) -> None:
        layout = self.document.layout
        text = self.caption_edit.toPlainText().strip()
        if layout is not None and text != layout.caption:
            self.push_edit(replace(layout, caption=text), "Edit caption", MERGE_CAPTION)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.caption_edit and event.type() == QEvent.Type.FocusOut:
            self.commit_caption()
        return super().eventFilter(watched, event)

    def add_concept(self, concept_id: int) -> None:
        layout = self.document.layout
        if layout is None or concept_id in {o.concept_id for o in layout.objects}:
            return
        pixmap = self.canvas.pixmaps.get(concept_id)
        aspect = pixmap.width() / pixmap.height() if pixmap and pixmap.height() else 1.0
        w, h = 0.3 * math.sqrt(aspect), 0.3 / math.sqrt(aspect)
        x, y, w, h = clamp_box(0.5 - w / 2, 0.5 - h / 2, min(w, 0.9), min(h, 0.9))
        z = max((o.z for o in layout.objects), default=-1) + 1
        objects = (*layout.objects, LayoutObject(concept_id, x, y, w, h, z))
        self.push_edit(replace(layout, objects=objects),
                       f"Add {self.canvas.names.get(concept_id, '')}".strip())
        self.canvas.select_only(concept_id)

    def add_chosen_concept(self) -> None:
        concept_id = self.add_combo.currentData()
        if concept_id is not None:
            self.add_concept(concept_id)

    def _lock_aspect(self, locked: bool) -> None:
        for item in self.canvas.items_by_concept.values():
            item.aspect_locked = locked

    def _confirm_delete_layout(self) -> None:
        layout = self.document.layout
        if layout is None:
            return
        if ask(self, "Delete layout", f"Delete layout #{layout.id} ({layout.scene})?"):
            self.delete_layout(layout.id)

    def delete_layout(self, layout_id: int) -> None:
        self.state.project.delete_layout(layout_id)
        stack = self.stacks.pop(layout_id, None)
        if stack is not None:
            self.undo_group.removeStack(stack)
        self.document.layout = None
        self.state.touch("layouts")

    # ------------------------------------------------------------------ planner

    def plan_layouts(self) -> None:
        if self.state.project is None or self._plan_job is not None:
            return
        try:
            params = self.state.job_params(PLAN, count=self.plan_count.value())
            handle = self.jobs.submit(PLAN, params, on_event=self._plan_event)
        except MyCanvasError as exc:
            self.plan_status.setText(str(exc))
            return
        self._plan_job = handle.job_id
        self.plan_button.setEnabled(False)
        self.plan_status.setText("The planner is thinking of scenes… (see Jobs)")

    def _plan_event(self, event: JobEvent) -> None:
        if not isinstance(event, JobFinished | JobFailed | JobCancelled):
            return
        self._plan_job = None
        if isinstance(event, JobFinished):
            ids = event.result.layout_ids
            self.plan_status.setText(f"{len(ids)} new layout{'s' * (len(ids) != 1)}.")
            if ids:
                self.open_layout(ids[0])
        else:
            self.plan_status.setText(for_window(event.reason) if isinstance(event, JobFailed)
                                     else "Planning cancelled; the layouts made so far are kept.")
        self.reload()

    def teardown(self) -> None:
        self.bindings.clear()
