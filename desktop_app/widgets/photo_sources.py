"""Ways to bring photos in besides a drop: a file dialog, and the clipboard (photo files copied
in a file manager, or an image copied in another program, saved as a PNG the import reads)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtCore import QMimeData
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog, QWidget

from desktop_app.widgets.concept_drop import paths_from_mime

IMAGE_FILTER = ("Images (*.jpg *.jpeg *.png *.webp *.bmp *.tif *.tiff *.gif *.heic *.avif);;"
                "All files (*)")


def choose_photo_files(parent: QWidget | None, title: str) -> list[Path]:
    names = QFileDialog.getOpenFileNames(parent, title, "", IMAGE_FILTER)[0]
    return [Path(n) for n in names]


class PastedPhotos:
    """Turns what the clipboard holds into files to import. Pasted images are written to a
    private temporary folder that lives as long as the window (the import copies them into
    the project)."""

    def __init__(self) -> None:
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._count = 0

    def paths(self, mime: QMimeData | None) -> list[Path]:
        """Files copied in a file manager as they are; an image as a new PNG; else []."""
        if mime is None:
            return []
        files = paths_from_mime(mime)
        if files:
            return files
        if not mime.hasImage():
            return []
        image = mime.imageData()
        if not isinstance(image, QImage) or image.isNull():
            return []
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="mycanvas-pasted-")
        self._count += 1
        # One folder per paste: the file keeps a plain name, which the new concept's name is
        # guessed from ("Pasted image").
        folder = Path(self._folder.name) / str(self._count)
        folder.mkdir()
        path = folder / "Pasted image.png"
        if not image.save(str(path), "PNG"):
            return []
        return [path]

    def cleanup(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
