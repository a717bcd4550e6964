"""The canvas layout editor: a QGraphicsView of one layout, every object its concept's cut-out
in its box. Move, resize (aspect-locked unless Shift is held), reorder, delete, nudge with the
arrow keys; every change is a QUndoCommand that stores the whole layout before and after, and
every change is saved to the project at once (LayoutDocument).
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QBrush,
    QColor,
    QFont,
    QKeySequence,
    QPainter,
    QPen,
    QPixmap,
    QUndoCommand,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsObject,
    QGraphicsScene,
    QGraphicsView,
    QStyleOptionGraphicsItem,
    QWidget,
)

from desktop_app.state.observable import AppState, Evented, Field
from engine.errors import MyCanvasError
from engine.project import Layout, LayoutObject

CANVAS = 600.0  # scene units per side: boxes are stored in 0..1 of this
HANDLE = 9.0
MIN_SIDE = 0.03  # the smallest box side, in canvas fractions
NUDGE, BIG_NUDGE = 0.005, 0.05
MERGE_NUDGE, MERGE_SCENE, MERGE_CAPTION = 1, 2, 3


class LayoutDocument(Evented):
    """The layout on the canvas; `apply` stores a new version in the project first."""

    layout = Field(None)  # engine.project.Layout | None
    error = Field("")  # why the last change could not be saved, or ""

    def __init__(self, state: AppState) -> None:
        super().__init__()
        self.state = state

    def apply(self, layout: Layout) -> None:
        try:
            stored = self.state.project.update_layout(layout)
        except MyCanvasError as exc:  # the stored layout stays on show
            self.error = str(exc)
            self.layout_changed.emit(self.layout)
            return
        self.error = ""
        self.layout = stored
        self.state.touch("layouts")


class LayoutEdit(QUndoCommand):
    """One change of a layout: the whole record before and after (layouts are tiny)."""

    def __init__(self, document: LayoutDocument, before: Layout, after: Layout, text: str,
                 merge: int = -1) -> None:
        super().__init__(text)
        self.document, self.before, self.after, self.merge = document, before, after, merge

    def redo(self) -> None:
        self.document.apply(self.after)

    def undo(self) -> None:
        self.document.apply(self.before)

    def id(self) -> int:
        return self.merge

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, LayoutEdit) or other.merge != self.merge or self.merge < 0:
            return False
        self.after = other.after
        return True


def clamp_box(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
    """A box inside the canvas (fractions), at least MIN_SIDE on each side."""
    w, h = min(max(w, MIN_SIDE), 1.0), min(max(h, MIN_SIDE), 1.0)
    return min(max(x, 0.0), 1.0 - w), min(max(y, 0.0), 1.0 - h), w, h


class ObjectItem(QGraphicsObject):
    """One concept on the canvas: its cut-out fitted in the box, a frame, corner handles."""

    released = Signal()

    def __init__(self, concept_id: int, name: str) -> None:
        super().__init__()
        self.concept_id = concept_id
        self.name = name
        self.pixmap: QPixmap | None = None
        self.w = self.h = 0.0
        self.aspect_locked = True
        self._corner: int | None = None
        self._anchor = QPointF()
        self._start = (0.0, 0.0)
        self._changed = False
        self.setFlags(QGraphicsItem.GraphicsItemFlag.ItemIsMovable
                      | QGraphicsItem.GraphicsItemFlag.ItemIsSelectable
                      | QGraphicsItem.GraphicsItemFlag.ItemSendsGeometryChanges)
        self.setAcceptHoverEvents(True)

    # ------------------------------------------------------------------ geometry

    def set_box(self, obj: LayoutObject) -> None:
        self.prepareGeometryChange()
        self.w, self.h = obj.w * CANVAS, obj.h * CANVAS
        self.setPos(obj.x * CANVAS, obj.y * CANVAS)
        self.setZValue(obj.z)
        self.update()

    def box(self) -> tuple[float, float, float, float]:
        return clamp_box(self.x() / CANVAS, self.y() / CANVAS, self.w / CANVAS, self.h / CANVAS)

    def boundingRect(self) -> QRectF:
        return QRectF(-HANDLE, -HANDLE - 18, self.w + 2 * HANDLE, self.h + 2 * HANDLE + 18)

    def corners(self) -> list[QPointF]:
        return [QPointF(0, 0), QPointF(self.w, 0), QPointF(self.w, self.h), QPointF(0, self.h)]

    def corner_at(self, pos: QPointF) -> int | None:
        if not self.isSelected():
            return None
        for i, corner in enumerate(self.corners()):
            if abs(pos.x() - corner.x()) <= HANDLE and abs(pos.y() - corner.y()) <= HANDLE:
                return i
        return None

    def itemChange(self, change, value):
        if change == QGraphicsItem.GraphicsItemChange.ItemPositionChange:
            self._changed = True
            return QPointF(min(max(value.x(), 0.0), CANVAS - self.w),
                           min(max(value.y(), 0.0), CANVAS - self.h))
        return super().itemChange(change, value)

    # ------------------------------------------------------------------ painting

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        rect = QRectF(0, 0, self.w, self.h)
        if self.pixmap is not None and not self.pixmap.isNull():
            size = self.pixmap.size().scaled(int(self.w), int(self.h),
                                             Qt.AspectRatioMode.KeepAspectRatio)
            target = QRectF(0, 0, size.width(), size.height())
            target.moveCenter(rect.center())
            painter.drawPixmap(target, self.pixmap, QRectF(self.pixmap.rect()))
        else:
            painter.fillRect(rect, QColor(120, 150, 200, 90))
        selected = self.isSelected()
        painter.setPen(QPen(QColor(30, 144, 255) if selected else QColor(255, 255, 255, 200),
                            2 if selected else 1,
                            Qt.PenStyle.SolidLine if selected else Qt.PenStyle.DashLine))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(rect)
        font = QFont()
        font.setPointSizeF(9)
        painter.setFont(font)
        label = QRectF(0, -18, max(self.w, 80), 16)
        painter.fillRect(QRectF(0, -18, painter.fontMetrics().horizontalAdvance(self.name) + 8,
                                16), QColor(0, 0, 0, 150))
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(label.adjusted(4, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, self.name)
        if selected:
            painter.setBrush(QBrush(QColor(30, 144, 255)))
            painter.setPen(QPen(QColor(255, 255, 255), 1))
            for corner in self.corners():
                painter.drawRect(QRectF(corner.x() - HANDLE / 2, corner.y() - HANDLE / 2,
                                        HANDLE, HANDLE))

    # ------------------------------------------------------------------ mouse

    def hoverMoveEvent(self, event) -> None:
        corner = self.corner_at(event.pos())
        shapes = (Qt.CursorShape.SizeFDiagCursor, Qt.CursorShape.SizeBDiagCursor)
        self.setCursor(Qt.CursorShape.SizeAllCursor if corner is None else shapes[corner % 2])
        super().hoverMoveEvent(event)

    # A press on a corner handle never reaches the item: the canvas routes handle drags
    # itself (LayoutCanvas.handle_at), so a selected item's handles win over items on top.

    def mousePressEvent(self, event) -> None:
        self._changed = False
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        if self._changed:
            self._changed = False
            self.released.emit()

    def resize_towards(self, pointer: QPointF, keep_aspect: bool = True) -> None:
        """Resize from the grabbed corner to the pointer, the opposite corner fixed."""
        corner = self._corner if self._corner is not None else 2
        right, down = corner in (1, 2), corner in (2, 3)
        ax, ay = self._anchor.x(), self._anchor.y()
        room_w = CANVAS - ax if right else ax
        room_h = CANVAS - ay if down else ay
        least = MIN_SIDE * CANVAS
        w = (pointer.x() - ax) if right else (ax - pointer.x())
        h = (pointer.y() - ay) if down else (ay - pointer.y())
        if keep_aspect:
            w0, h0 = self._start
            scale = max(w / w0, h / h0)
            scale = min(scale, room_w / w0, room_h / h0)
            scale = max(scale, least / min(w0, h0))
            w, h = w0 * scale, h0 * scale
        else:
            w, h = min(max(w, least), room_w), min(max(h, least), room_h)
        self.prepareGeometryChange()
        self.w, self.h = w, h
        self._changed = True
        self.setPos(ax if right else ax - w, ay if down else ay - h)

    def begin_resize(self, corner: int) -> None:
        """Start a resize from code (the canvas, keyboard or tests) as a corner drag would."""
        self._changed = False
        self._corner = corner
        self._anchor = self.mapToScene(self.corners()[(corner + 2) % 4])
        self._start = (self.w, self.h)

    def end_resize(self) -> None:
        self._corner = None
        if self._changed:
            self._changed = False
            self.released.emit()


class LayoutCanvas(QGraphicsView):
    """Shows the LayoutDocument; user edits go through `edited(after, text, merge)`."""

    edited = Signal(object, str, int)

    def __init__(self, document: LayoutDocument) -> None:
        super().__init__()
        self.setObjectName("layoutCanvas")
        self.document = document
        self.setScene(QGraphicsScene(0, 0, CANVAS, CANVAS, self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setBackgroundBrush(QColor(60, 60, 60))
        self.setDragMode(QGraphicsView.DragMode.RubberBandDrag)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        backdrop = self.scene().addRect(QRectF(0, 0, CANVAS, CANVAS), QPen(Qt.PenStyle.NoPen),
                                        QColor(236, 232, 224))
        backdrop.setZValue(-1000)
        self.scene_label = self.scene().addSimpleText("")
        self.scene_label.setBrush(QColor(120, 110, 100))
        self.scene_label.setPos(8, CANVAS - 22)
        self.scene_label.setZValue(-999)
        self.items_by_concept: dict[int, ObjectItem] = {}
        self.names: dict[int, str] = {}
        self.pixmaps: dict[int, QPixmap] = {}
        self._resizing: ObjectItem | None = None  # a handle drag the view routes itself
        self._add_shortcuts()

    def _add_shortcuts(self) -> None:
        def shortcut(keys: list[QKeySequence | str], slot) -> QAction:
            action = QAction(self)
            action.setShortcuts([QKeySequence(k) for k in keys])
            action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            action.triggered.connect(slot)
            self.addAction(action)
            return action

        shortcut([QKeySequence.StandardKey.Delete, "Backspace"], self.delete_selected)
        for key, dx, dy in (("Left", -1, 0), ("Right", 1, 0), ("Up", 0, -1), ("Down", 0, 1)):
            shortcut([key], lambda _c=False, dx=dx, dy=dy: self.nudge(dx * NUDGE, dy * NUDGE))
            shortcut([f"Shift+{key}"],
                     lambda _c=False, dx=dx, dy=dy: self.nudge(dx * BIG_NUDGE, dy * BIG_NUDGE))
        shortcut(["Ctrl+]"], lambda: self.restack(+1))
        shortcut(["Ctrl+["], lambda: self.restack(-1))

    # ------------------------------------------------------------------ showing

    def show_layout(self, layout: Layout | None) -> None:
        """Bring the items in line with the layout: update in place, so an item is never
        deleted inside its own mouse handler."""
        objects = {} if layout is None else {o.concept_id: o for o in layout.objects}
        for cid in [c for c in self.items_by_concept if c not in objects]:
            self.scene().removeItem(self.items_by_concept.pop(cid))
        for cid, obj in objects.items():
            item = self.items_by_concept.get(cid)
            if item is None:
                item = ObjectItem(cid, self.names.get(cid, f"concept {cid}"))
                item.pixmap = self.pixmaps.get(cid)
                item.released.connect(self.commit_geometry)
                self.scene().addItem(item)
                self.items_by_concept[cid] = item
            item.set_box(obj)
        self.scene_label.setText("" if layout is None else layout.scene)

    def set_names(self, names: dict[int, str]) -> None:
        self.names = dict(names)
        for cid, item in self.items_by_concept.items():
            item.name = self.names.get(cid, item.name)
            item.update()

    def set_pixmap(self, concept_id: int, pixmap: QPixmap) -> None:
        self.pixmaps[concept_id] = pixmap
        item = self.items_by_concept.get(concept_id)
        if item is not None:
            item.pixmap = pixmap
            item.update()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fitInView(QRectF(-12, -24, CANVAS + 24, CANVAS + 36),
                       Qt.AspectRatioMode.KeepAspectRatio)

    # ------------------------------------------------------------------ mouse

    def handle_at(self, scene_pos: QPointF) -> tuple[ObjectItem, int] | None:
        """A corner handle of a selected item under the pointer, even where another item lies
        on top: the selected item's handles win (the topmost selected one first)."""
        chosen = sorted((i for i in self.scene().selectedItems() if isinstance(i, ObjectItem)),
                        key=lambda i: -i.zValue())
        for item in chosen:
            corner = item.corner_at(item.mapFromScene(scene_pos))
            if corner is not None:
                return item, corner
        return None

    def mousePressEvent(self, event) -> None:
        hit = None
        if event.button() == Qt.MouseButton.LeftButton:
            hit = self.handle_at(self.mapToScene(event.position().toPoint()))
        if hit is None:
            super().mousePressEvent(event)
            return
        item, corner = hit
        self._resizing = item
        item.begin_resize(corner)
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        item = self._resizing
        if item is None:
            super().mouseMoveEvent(event)
            return
        free = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        item.resize_towards(self.mapToScene(event.position().toPoint()),
                            keep_aspect=item.aspect_locked and not free)

    def mouseReleaseEvent(self, event) -> None:
        item, self._resizing = self._resizing, None
        if item is None:
            super().mouseReleaseEvent(event)
            return
        item.end_resize()

    # ------------------------------------------------------------------ edits

    def _with_objects(self, objects: list[LayoutObject]) -> Layout:
        return replace(self.document.layout, objects=tuple(objects))

    def commit_geometry(self) -> None:
        """After a drag: read every item's box; one undo step if anything moved."""
        layout = self.document.layout
        if layout is None:
            return
        changes: dict[int, str] = {}
        objects = []
        for obj in layout.objects:
            x, y, w, h = self.items_by_concept[obj.concept_id].box()
            new = LayoutObject(obj.concept_id, x, y, w, h, obj.z)
            if abs(new.w - obj.w) > 1e-6 or abs(new.h - obj.h) > 1e-6:
                changes[obj.concept_id] = "Resize"
            elif abs(new.x - obj.x) > 1e-6 or abs(new.y - obj.y) > 1e-6:
                changes[obj.concept_id] = "Move"
            objects.append(new)
        if changes:
            verb = "Resize" if "Resize" in changes.values() else "Move"
            (only,) = changes if len(changes) == 1 else (None,)
            name = self.names.get(only, "") if only is not None else f"{len(changes)} objects"
            self.edited.emit(self._with_objects(objects), f"{verb} {name}".strip(), -1)

    def selected_ids(self) -> list[int]:
        return [i.concept_id for i in self.scene().selectedItems() if isinstance(i, ObjectItem)]

    def nudge(self, dx: float, dy: float) -> None:
        layout, chosen = self.document.layout, set(self.selected_ids())
        if layout is None or not chosen:
            return
        objects = [LayoutObject(o.concept_id, *clamp_box(o.x + dx, o.y + dy, o.w, o.h), o.z)
                   if o.concept_id in chosen else o for o in layout.objects]
        self.edited.emit(self._with_objects(objects), "Nudge", MERGE_NUDGE)

    def delete_selected(self) -> None:
        layout, chosen = self.document.layout, set(self.selected_ids())
        if layout is None or not chosen:
            return
        objects = [o for o in layout.objects if o.concept_id not in chosen]
        self.edited.emit(self._with_objects(objects), "Delete", -1)

    def restack(self, step: int) -> None:
        """Bring the selection one step forward (+1) or backward (-1) in z-order."""
        layout, chosen = self.document.layout, set(self.selected_ids())
        if layout is None or len(chosen) != 1:
            return
        order = sorted(layout.objects, key=lambda o: (o.z, o.concept_id))
        i = next(k for k, o in enumerate(order) if o.concept_id in chosen)
        j = i + step
        if not 0 <= j < len(order):
            return
        order[i], order[j] = order[j], order[i]
        z = {o.concept_id: k for k, o in enumerate(order)}
        objects = [replace(o, z=z[o.concept_id]) for o in layout.objects]
        self.edited.emit(self._with_objects(objects),
                         "Bring forward" if step > 0 else "Send backward", -1)

    def select_only(self, concept_id: int) -> None:
        self.scene().clearSelection()
        item = self.items_by_concept.get(concept_id)
        if item is not None:
            item.setSelected(True)
