"""The mask editor: fix one photo's mask with clicks (object / not object), a box, or a brush.

Clicks and the box go to the segmenter (job "segment-prompts"); a brush stroke changes only
the pixels it covers (job "paint-mask"). Every result is a new mask in the project, never an
overwrite, so undo makes the previous mask current again and redo the later one.
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
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from desktop_app.jobs_bridge import JobsBridge
from desktop_app.mask_canvas import TOOLS, MaskCanvas, Prompts
from desktop_app.observable import AppState
from desktop_app.project_reads import method_label
from desktop_app.thumbnails import BackgroundLoader, render_editor_images
from engine.errors import MyCanvasError
from engine.jobs import JobCancelled, JobDeclaration, JobEvent, JobFailed, JobFinished
from engine.models.profiles import get_profile
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
        self.undo_action = self.undo_stack.createUndoAction(self, "Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = self.undo_stack.createRedoAction(self, "Redo")
        self.redo_action.setShortcut(QKeySequence.StandardKey.Redo)
        self.toolbar.addAction(self.undo_action)
        self.toolbar.addAction(self.redo_action)
        self.toolbar.addSeparator()
        done = self.toolbar.addAction("Done", self.close_editor)
        done.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.toolbar)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.status)
        self.canvas.point_clicked.connect(self._clicked)
        self.canvas.box_drawn.connect(self._boxed)
        self.canvas.stroke_done.connect(self._stroked)
        thumbs.ready.connect(self._images_ready)
        self._job: str | None = None
        self._waiting_key: object = None

    # ------------------------------------------------------------------ opening

    def open_photo(self, photo_id: int) -> None:
        project = self.state.project
        photo = project.photo(photo_id)
        mask = project.current_masks(photo.concept_id).get(photo.id)
        self.current = _Open(photo.id, photo.concept_id, photo.original_name, photo.file,
                             mask=mask)
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
        if key != self._waiting_key or self.current is None:
            return
        photo, mask, scale = result
        self.current.scale = scale
        self.canvas.set_images(photo, mask)
        self.canvas.show_prompts(self.current.prompts, scale)
        self._describe()

    def _describe(self, extra: str = "") -> None:
        cur = self.current
        if cur is None:
            return
        test = get_profile(self.state.settings.profile or None).test_models
        made = method_label(cur.mask.method, test) if cur.mask else "no mask yet"
        hint = ("Click the object, right-click what is not the object, drag a box, or paint "
                "with the brush.")
        self.status.setText(" ".join(t for t in (f"Mask: {made}.", extra, hint) if t))

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
            self.state.touch("photos")
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
            self._load_images()
        else:
            reason = event.reason if isinstance(event, JobFailed) else "Cancelled."
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
                                    cutout_file=mask.cutout_file, quality=mask.quality)
        cur.prompts = prompts
        self.canvas.show_prompts(prompts, cur.scale)
        self.state.touch("photos")
        self._load_images()

    def close_editor(self) -> None:
        self.current = None
        self._waiting_key = None
        self.undo_stack.clear()
        self.closed.emit()
