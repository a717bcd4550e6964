"""The mask editor: fix one photo's mask with clicks (object / not object), a box, or a brush.

Clicks and the box go to the segmenter (job "segment-prompts"); a brush stroke changes only
the pixels it covers (job "paint-mask"). Every result is a new mask in the project, never an
overwrite, so undo makes the previous mask current again and redo the later one. A box that
loses part of the previous mask inside it is shown before/after (mask_compare). The toolbar
keeps its size: undo and redo are icons whose tooltips say what they take back.

Keys: 1-5 tools, [ and ] brush size, + and - zoom (the wheel too), 0 fit, middle button or
Space+drag pans, Ctrl+Z / Ctrl+Shift+Z undo and redo, Escape done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QImage,
    QKeySequence,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QStyle,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from desktop_app.state.jobs_bridge import JobsBridge
from desktop_app.state.observable import AppState, Bindings
from desktop_app.state.plain_words import for_window
from desktop_app.state.project_reads import mask_check, mask_label
from desktop_app.state.thumbnails import BackgroundLoader, render_editor_images
from desktop_app.widgets.mask_canvas import TOOLS, MaskCanvas, Prompts, view_toolbar
from desktop_app.widgets.mask_compare import NOTICEABLE, CompareBar, box_loss
from engine.errors import MyCanvasError
from engine.jobs import JobCancelled, JobDeclaration, JobEvent, JobFailed, JobFinished
from engine.project import Mask
from engine.segment.jobs import PAINT_MASK, SEGMENT_PROMPTS

EDITOR_SIDE = 1024


class _MaskChange(QUndoCommand):
    """Switch the current mask of the photo (and the prompts that made it)."""

    def __init__(self, editor: MaskEditor, text: str, before: tuple[Mask, Prompts],
                 after: tuple[Mask, Prompts]) -> None:
        super().__init__(text)
        self.editor, self.before, self.after = editor, before, after
        self._first = True

    def redo(self) -> None:
        if self._first:  # the job already made this mask current
            self._first = False
            return
        self.editor.make_current(*self.after)

    def undo(self) -> None:
        self.editor.make_current(*self.before)


@dataclass
class _Open:
    photo_id: int
    concept_id: int
    name: str
    file: str
    scale: float = 1.0
    mask: Mask | None = None
    prompts: Prompts = field(default_factory=Prompts)


class MaskEditor(QWidget):
    closed = Signal()
    message = Signal(str)

    def __init__(self, state: AppState, jobs: JobsBridge, thumbs: BackgroundLoader) -> None:
        super().__init__()
        self.setObjectName("maskEditor")
        self.state, self.jobs, self.thumbs = state, jobs, thumbs
        self.current: _Open | None = None
        self.undo_stack = QUndoStack(self)
        self.canvas = MaskCanvas()
        self.title = QLabel()
        self.title.setObjectName("maskEditorTitle")
        self.status = QLabel("Loading…")
        self.status.setObjectName("maskEditorStatus")
        self.status.setWordWrap(True)
        self.toolbar = QToolBar()
        self.tool_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        tips = {"add": ("Object", "Click on the object (right-click: not the object)", "1"),
                "remove": ("Not object", "Click where the mask should not be", "2"),
                "box": ("Box", "Drag a box around the object", "3"),
                "brush": ("Brush", "Paint to add to the mask", "4"),
                "erase": ("Eraser", "Paint to remove from the mask", "5")}
        for tool in TOOLS:
            label, tip, key = tips[tool]
            action = QAction(label, self, checkable=True)
            action.setToolTip(f"{tip} ({key})")
            action.setShortcut(QKeySequence(key))
            action.triggered.connect(lambda _c=False, t=tool: self.set_tool(t))
            group.addAction(action)
            self.toolbar.addAction(action)
            self.tool_actions[tool] = action
        self.tool_actions["add"].setChecked(True)
        self.brush_size = QSpinBox()
        self.brush_size.setRange(2, 200)
        self.brush_size.setValue(self.canvas.brush_radius)
        self.brush_size.setPrefix("brush ")
        self.brush_size.setSuffix(" px")
        self.brush_size.valueChanged.connect(self._set_brush)
        self.toolbar.addWidget(self.brush_size)
        self.toolbar.addSeparator()
        # Fixed labels: QUndoStack's own actions grow ("Undo segment with prompts") and push
        # Done into the overflow menu; what they take back is in the tooltip instead.
        icons = self.style()
        self.undo_action = QAction(icons.standardIcon(QStyle.StandardPixmap.SP_ArrowBack),
                                   "Undo", self)
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = QAction(icons.standardIcon(QStyle.StandardPixmap.SP_ArrowForward),
                                   "Redo", self)
        self.redo_action.setShortcuts(QKeySequence.StandardKey.Redo)  # Ctrl+Y, Ctrl+Shift+Z
        for action, stack_signal, text_signal, verb, go in (
                (self.undo_action, self.undo_stack.canUndoChanged,
                 self.undo_stack.undoTextChanged, "Undo", self.undo_stack.undo),
                (self.redo_action, self.undo_stack.canRedoChanged,
                 self.undo_stack.redoTextChanged, "Redo", self.undo_stack.redo)):
            action.setEnabled(False)
            action.setToolTip(f"Nothing to {verb.lower()}")
            action.triggered.connect(go)
            stack_signal.connect(action.setEnabled)
            text_signal.connect(lambda text, a=action, v=verb: a.setToolTip(
                f"{v} {text} ({a.shortcut().toString()})" if text else
                f"Nothing to {v.lower()}"))
            self.toolbar.addAction(action)
        self.toolbar.addSeparator()
        done = self.toolbar.addAction("Done", self.close_editor)
        done.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        done.setToolTip("Back to the photos (Escape)")
        self.done_action = done
        self.view_bar, self.opacity = view_toolbar(self.canvas, self.brush_size)
        self.compare = CompareBar()
        self.compare.show_before.connect(self._show_before)
        self.compare.keep.connect(self._end_compare)
        self.compare.go_back.connect(self._go_back)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.view_bar)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.toolbar)
        lay.addWidget(self.compare)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.status)
        self.canvas.point_clicked.connect(self._clicked)
        self.canvas.box_drawn.connect(self._boxed)
        self.canvas.stroke_done.connect(self._stroked)
        thumbs.ready.connect(self._images_ready)
        self._job: str | None = None
        self._waiting_key: object = None
        self._loss_key: object = None
        self._before_mask = QImage()  # what the canvas showed before a box prompt
        self._shown_mask = QImage()  # the mask the canvas shows now
        self._note = ""  # said with the mask's description until the next edit
        self.bindings = Bindings()
        self.bindings.on(state, "photos_rev", lambda _v: self._photos_changed())

    # ------------------------------------------------------------------ opening

    def open_photo(self, photo_id: int) -> None:
        project = self.state.project
        photo = project.photo(photo_id)
        mask = project.current_masks(photo.concept_id).get(photo.id)
        self.current = _Open(photo.id, photo.concept_id, photo.original_name, photo.file,
                             mask=mask)
        self._note = ""
        self._end_compare()
        self.undo_stack.clear()
        concept = project.concept(photo.concept_id)
        self.title.setText(f"<b>{concept.name}</b> — {photo.original_name}")
        self.canvas.show_prompts(Prompts(), 1.0)
        self.status.setText("Loading the photo…")
        self._load_images()

    def _load_images(self) -> None:
        cur, project = self.current, self.state.project
        if cur is None or project is None:
            return
        mask_file = cur.mask.file if cur.mask else None
        key = ("editor", cur.file, mask_file, EDITOR_SIDE)
        self._waiting_key = key
        hit = self.thumbs.request(key, render_editor_images, str(project.abspath(cur.file)),
                                  str(project.abspath(mask_file)) if mask_file else None,
                                  EDITOR_SIDE)
        if hit is not None:
            self._images_ready(key, hit)

    def _images_ready(self, key: object, result: object) -> None:
        if key == self._loss_key:
            self._loss_ready(result)
            return
        if key != self._waiting_key or self.current is None:
            return
        photo, mask, scale = result
        self.current.scale = scale
        self.canvas.set_images(photo, mask, keep_view=True)
        self._shown_mask = mask
        self.canvas.show_prompts(self.current.prompts, scale)
        self._describe(self._note)

    def _describe(self, extra: str = "") -> None:
        cur = self.current
        if cur is None:
            return
        made = mask_label(cur.mask) if cur.mask else "no mask yet"
        check = mask_check(cur.mask) if cur.mask else ""
        hint = ("Click the object, right-click what is not the object, drag a box, or paint "
                "with the brush.")
        self.status.setText(" ".join(t for t in (f"Mask: {made}.", check, extra, hint) if t))

    # ------------------------------------------------------------------ tools

    def set_tool(self, tool: str) -> None:
        self.canvas.tool = tool
        self.tool_actions[tool].setChecked(True)

    def _set_brush(self, radius: int) -> None:
        self.canvas.brush_radius = radius

    def _clicked(self, x: float, y: float, label: int) -> None:
        cur = self.current
        if cur is not None:
            self._segment(cur.prompts.with_point(x / cur.scale, y / cur.scale, label))

    def _boxed(self, rect: QRectF) -> None:
        cur = self.current
        if cur is not None:
            s = cur.scale
            self._segment(cur.prompts.with_box((rect.left() / s, rect.top() / s,
                                                rect.right() / s, rect.bottom() / s)))

    def _busy(self) -> bool:
        if self._job is not None:
            self.status.setText("Still working on the last change; try again in a moment.")
            return True
        return False

    def _segment(self, prompts: Prompts) -> None:
        cur = self.current
        if cur is None or self._busy():
            return
        self._end_compare()
        self.canvas.show_prompts(prompts, cur.scale)
        self._start(SEGMENT_PROMPTS, {"photo_id": cur.photo_id,
                                      "prompts": [prompts.to_dict(cur.concept_id)]},
                    f"Fix the mask of {cur.name}", prompts,
                    "Finding the object where you pointed…")

    def _stroked(self, mode: str, stroke: QImage) -> None:
        cur = self.current
        if cur is None or self._busy():
            self._load_images()  # show the stored mask again, without the refused stroke
            return
        self._end_compare()
        data = bytes(stroke.constBits())
        fields = {"photo_id": cur.photo_id, "concept_id": cur.concept_id, "mode": mode,
                  "stroke": data, "width": stroke.width(), "height": stroke.height(),
                  "stride": stroke.bytesPerLine(),
                  "base_mask_id": cur.mask.id if cur.mask else None}
        self._start(PAINT_MASK, fields, f"Paint the mask of {cur.name}", cur.prompts,
                    "Saving the painted mask…")

    def _start(self, decl: JobDeclaration, fields: dict[str, Any], title: str,
               prompts: Prompts, doing: str) -> None:
        cur = self.current
        assert cur is not None
        self._note = ""
        before = (cur.mask, cur.prompts)
        try:
            params = self.state.job_params(decl, **fields)
            handle = self.jobs.submit(decl, params, title,
                                      on_event=lambda e: self._job_event(e, before, prompts))
        except MyCanvasError as exc:
            self.status.setText(str(exc))
            return
        self._job = handle.job_id
        self.status.setText(doing)

    def _job_event(self, event: JobEvent, before: tuple[Mask | None, Prompts],
                   prompts: Prompts) -> None:
        if not isinstance(event, JobFinished | JobFailed | JobCancelled):
            return
        self._job = None
        cur = self.current
        if cur is None:
            return
        if isinstance(event, JobFinished):
            result = event.result
            mask_id = result.masks[0]["mask_id"] if hasattr(result, "masks") else result.mask_id
            after = next(m for m in self.state.project.masks(photo_id=cur.photo_id)
                     if m.id == mask_id)
            cur.mask, cur.prompts = after, prompts
            old_mask, old_prompts = before
            if old_mask is not None:
                text = "brush stroke" if after.method == "painted" else "segment with prompts"
                self.undo_stack.push(_MaskChange(self, text, (old_mask, old_prompts),
                                                 (after, prompts)))
                if prompts.box is not None and prompts.box != old_prompts.box:
                    self._check_box(old_mask, after, prompts.box)
            self._load_images()
        else:
            reason = for_window(event.reason) if isinstance(event, JobFailed) else "Cancelled."
            cur.prompts = before[1]
            self.canvas.show_prompts(cur.prompts, cur.scale)
            self._load_images()  # drop a refused stroke from the screen
            self._describe(reason)

    # ------------------------------------------------------------------ undo/redo

    def make_current(self, mask: Mask, prompts: Prompts) -> None:
        """Make an earlier (or later) mask the current one again: a new catalogue row that
        points at the same stored files."""
        cur, project = self.current, self.state.project
        if cur is None or project is None:
            return
        cur.mask = project.add_mask(cur.photo_id, cur.concept_id, mask.file, mask.method,
                                    cutout_file=mask.cutout_file, quality=mask.quality,
                                    profile=mask.profile, test_model=mask.test_model,
                                    flag=mask.flag)
        cur.prompts = prompts
        self.canvas.show_prompts(prompts, cur.scale)
        self.state.touch("photos")
        self._load_images()

    # ------------------------------------------------------------------ box before/after

    def _check_box(self, before: Mask, after: Mask, box: tuple[float, ...]) -> None:
        """Ask (off the GUI thread) how much of the previous mask inside the box was lost."""
        project = self.state.project
        shown = self.canvas.mask.size()
        if project is None or shown.isEmpty():
            return
        self._before_mask = self.canvas.mask.copy()
        self._loss_key = ("box-loss", before.file, after.file, tuple(box),
                          shown.width(), shown.height())
        hit = self.thumbs.request(self._loss_key, box_loss, str(project.abspath(before.file)),
                                  str(project.abspath(after.file)), tuple(box),
                                  (shown.width(), shown.height()))
        if hit is not None:
            self._loss_ready(hit)

    def _loss_ready(self, result: object) -> None:
        share, lost = result
        if self.current is None or share < NOTICEABLE:
            return
        self.canvas.set_lost(lost)
        self.compare.ask(share)

    def _show_before(self, before: bool) -> None:
        self.canvas.set_mask(self._before_mask if before else self._shown_mask)
        self.canvas.lost_item.setVisible(not before)

    def _end_compare(self) -> None:
        if self.compare.isVisible():
            self._show_before(False)
        self.compare.hide()
        self.canvas.set_lost(None)
        self._loss_key = None

    def _go_back(self) -> None:
        self._end_compare()
        self.undo_stack.undo()

    # ------------------------------------------------------------------ outside changes

    def _photos_changed(self) -> None:
        """Another job or the command line changed this photo's mask (or removed the photo):
        show what the project now holds, unless the editor's own job is still running."""
        cur, project = self.current, self.state.project
        if cur is None or project is None or self._job is not None:
            return
        try:
            project.photo(cur.photo_id)
        except MyCanvasError:
            self.message.emit(f"{cur.name} was removed from the project.")
            self.close_editor()
            return
        mask = project.current_masks(cur.concept_id).get(cur.photo_id)
        if mask is None or (cur.mask is not None and mask.id == cur.mask.id):
            return
        cur.mask = mask
        self._end_compare()
        cur.prompts = Prompts()  # the clicks made the old mask, not this one
        self.canvas.show_prompts(cur.prompts, cur.scale)
        self._note = "The mask was changed outside the editor; this is the new one."
        self._load_images()
        self._describe(self._note)

    def close_editor(self) -> None:
        self._end_compare()
        self.current = None
        self._waiting_key = None
        self.undo_stack.clear()
        self.closed.emit()

    def teardown(self) -> None:
        self.bindings.clear()
