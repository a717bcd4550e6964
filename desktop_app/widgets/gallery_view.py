"""One gallery picture large, with each concept's detected box drawn over it and its scores;
or two side by side to compare. Plus the question "use this recipe": which of the picture's
settings go to the Generate page (only those: the rest of the page stays as it is). Keys 0-5
rate the picture on show (0 clears), as on the grid."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.state.gallery_model import score_text
from desktop_app.state.thumbnails import ITEM_COLOURS

VIEW_SIDE = 512
# The recipe's parts a user may take, as the Generate page names them.
RECIPE_FIELDS = (("run", "Run (the concepts)"), ("prompt", "Prompt"),
                 ("negative", "Negative prompt"), ("seed", "Seed"), ("steps", "Steps"),
                 ("guidance", "Guidance"), ("size", "Size"), ("scheduler", "Sampler"),
                 ("layout", "Layout boxes"))
DEFAULT_FIELDS = ("prompt", "seed")


def stars_text(rating: int | None) -> str:
    """A rating as five stars, filled up to the rating ("not rated" for none)."""
    return "not rated" if not rating else "★" * rating + "☆" * (5 - rating)


def picture_with_boxes(image: Any, side: int = VIEW_SIDE) -> QPixmap:
    """The picture scaled to `side`, each detected concept's box in its colour."""
    pixmap = QPixmap(str(image.path)) if image.path is not None else QPixmap()
    if pixmap.isNull():
        pixmap = QPixmap(side, side)
        pixmap.fill(QColor(60, 60, 60))
        return pixmap
    pixmap = pixmap.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                           Qt.TransformationMode.SmoothTransformation)
    painter = QPainter(pixmap)
    for k, concept in enumerate(image.concepts):
        if concept.box is None:
            continue
        colour = QColor(*ITEM_COLOURS[k % len(ITEM_COLOURS)])
        painter.setPen(QPen(colour, 3))
        x, y, w, h = concept.box
        rect = QRectF(x * pixmap.width(), y * pixmap.height(), w * pixmap.width(),
                      h * pixmap.height())
        painter.drawRect(rect)
        painter.fillRect(QRectF(rect.left(), rect.top(), 80, 16), colour)
        painter.setPen(Qt.GlobalColor.black)
        painter.drawText(rect.adjusted(3, 0, 0, 0), concept.token)
    painter.end()
    return pixmap


def scores_html(image: Any) -> str:
    g = image.generation
    rows = "".join(
        f"<tr><td><span style='color: rgb{ITEM_COLOURS[k % len(ITEM_COLOURS)]}'>■</span> "
        f"{c.token} {c.name}</td><td>{score_text(c.cp_clip)}</td>"
        f"<td>{'found' if c.detected else 'not found (scores 0)'}"
        f"{f', confidence {c.confidence:.2f}' if c.confidence is not None else ''}</td></tr>"
        for k, c in enumerate(image.concepts))
    test = ("<p style='color:#8a5a00'><b>Test models</b>: these scores come from the tiny "
            "test models and mean nothing.</p>" if image.test_model else "")
    return (f"<p><b>#{g.id}</b> {g.prompt}</p><p>seed {g.seed} · run {g.run_id or '–'} · "
            f"{'layout-guided' if image.guided else 'no layout'} · "
            f"{(g.created_at or '').replace('T', ' ')[:16]}</p>"
            f"<p>{stars_text(g.rating)}"
            f"{' · ★ favourite' if g.favourite else ''}</p>"
            f"<p><b>CP-CLIP</b> {score_text(image.cp_clip)} · <b>TI-CLIP</b> "
            f"{score_text(image.ti_clip)}</p>"
            + (f"<table cellspacing=4><tr><th align=left>Concept</th><th>CP-CLIP</th>"
               f"<th align=left>Detector</th></tr>{rows}</table>" if rows else "") + test)


class PicturePanel(QWidget):
    def __init__(self, image: Any, side: int = VIEW_SIDE) -> None:
        super().__init__()
        self.picture = QLabel()
        self.picture.setObjectName("galleryPicture")
        self.picture.setPixmap(picture_with_boxes(image, side))
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.scores = QLabel(scores_html(image))
        self.scores.setObjectName("galleryScores")
        self.scores.setWordWrap(True)
        self.scores.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QVBoxLayout(self)
        lay.addWidget(self.picture)
        lay.addWidget(self.scores, 1)


class PictureDialog(QDialog):
    """One picture (or two, compared); `favourite(id, bool)`, `rated(id, stars)` and
    `use_recipe(id)` ask the page to act."""

    favourite = Signal(int, bool)
    rated = Signal(int, int)  # picture id, stars (0: no rating)
    use_recipe = Signal(int)

    def __init__(self, images: list[Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("galleryViewer")
        self.images = images
        compare = len(images) == 2
        self.setWindowTitle("Compare two pictures" if compare else
                            f"Picture #{images[0].id}")
        side = 420 if compare else VIEW_SIDE
        self.panels = [PicturePanel(image, side) for image in images]
        row = QHBoxLayout()
        for panel in self.panels:
            row.addWidget(panel)
        buttons = QHBoxLayout()
        self.rating = QLabel()
        self.rating.setObjectName("galleryRating")
        if not compare:
            image = images[0]
            self.show_rating(image.generation.rating)
            buttons.addWidget(self.rating)
            star = QPushButton("★ Unfavourite" if image.generation.favourite else "☆ Favourite")
            star.clicked.connect(lambda: (self.favourite.emit(
                image.id, not image.generation.favourite), self.accept()))
            recipe = QPushButton("Use this recipe…")
            recipe.clicked.connect(lambda: (self.use_recipe.emit(image.id), self.accept()))
            buttons.addWidget(star)
            buttons.addWidget(recipe)
        buttons.addStretch(1)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        buttons.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addLayout(row, 1)
        lay.addLayout(buttons)

    def show_rating(self, rating: int | None) -> None:
        self.rating.setText(f"{stars_text(rating)}  (keys 1-5 rate, 0 clears)")

    def keyPressEvent(self, event: QKeyEvent) -> None:
        stars = event.key() - Qt.Key.Key_0.value if len(self.images) == 1 else -1
        if 0 <= stars <= 5 and not event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.rated.emit(self.images[0].id, stars)
            self.show_rating(stars or None)
            return
        super().keyPressEvent(event)


class RecipeFieldsDialog(QDialog):
    """Which parts of a picture's recipe to put on the Generate page."""

    def __init__(self, image: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("recipeFields")
        self.setWindowTitle(f"Use the recipe of picture #{image.id}")
        settings = image.generation.settings or {}
        self.boxes: dict[str, QCheckBox] = {}
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Fill only these fields of the Generate page; the others keep "
                             "what you set there:"))
        shown = {"run": settings.get("run_id", image.generation.run_id),
                 "prompt": settings.get("prompt", image.generation.prompt),
                 "negative": settings.get("negative_prompt"), "seed": settings.get("seed"),
                 "steps": settings.get("steps"), "guidance": settings.get("guidance"),
                 "size": (f"{settings['width']}×{settings['height']}"
                          if settings.get("width") and settings.get("height") else None),
                 "scheduler": settings.get("scheduler"),
                 "layout": (f"{len(settings['layout'].get('boxes', []))} boxes"
                            if isinstance(settings.get("layout"), dict) else None)}
        for name, label in RECIPE_FIELDS:
            value = shown[name]
            box = QCheckBox(f"{label}: {value}" if value not in (None, "") else
                            f"{label}: (not in this recipe)")
            box.setObjectName(f"recipe-{name}")
            box.setEnabled(value not in (None, ""))
            box.setChecked(name in DEFAULT_FIELDS and box.isEnabled())
            self.boxes[name] = box
            lay.addWidget(box)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def chosen(self) -> set[str]:
        return {name for name, box in self.boxes.items() if box.isChecked()}
