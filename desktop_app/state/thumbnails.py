"""Thumbnails (and other small reads) off the GUI thread: photos with their mask drawn over,
dataset items, cut-outs.

Decoding a photo (EXIF orientation, colour profile) costs tens of milliseconds or more, so it
runs on a small private thread pool; the result is a QImage (safe to make on any thread) sent
back to the GUI thread through a queued signal and cached by key. PIL and numpy are imported
inside the render functions, never at start-up.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

MASK_EDGE = (46, 204, 113)  # the mask's outline on a photo
# Outlines of the concepts in a dataset item, in their order.
ITEM_COLOURS = ((255, 99, 71), (30, 144, 255), (255, 215, 0), (186, 85, 211), (0, 206, 209))


# --------------------------------------------------------------------------- rendering


def pil_to_qimage(image: Any) -> QImage:
    rgba = image.convert("RGBA")
    data = rgba.tobytes("raw", "RGBA")
    return QImage(data, rgba.width, rgba.height, 4 * rgba.width,
                  QImage.Format.Format_RGBA8888).copy()


def _decoded_photo(path: str | Path) -> Any:
    """The photo upright and in sRGB, exactly as the engine sees it (masks match its pixels)."""
    from engine.intake.photos import decode_image

    data = Path(path).read_bytes()
    return decode_image(data, Path(path).name).rgb


def mask_array(path: str | Path, size: tuple[int, int]) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        mask = im.convert("L").resize(size, Image.Resampling.BILINEAR)
    return np.asarray(mask) >= 128


def _outline(mask: Any, width: int = 1) -> Any:
    import numpy as np

    inner = mask.copy()
    for _ in range(width):  # erode by one pixel per round, 4-neighbourhood
        shrunk = inner.copy()
        shrunk[1:, :] &= inner[:-1, :]
        shrunk[:-1, :] &= inner[1:, :]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return mask & ~inner if np.any(mask) else mask


def overlay_mask(rgb: Any, mask: Any, colour: tuple[int, int, int] = MASK_EDGE,
                 dim: bool = True) -> Any:
    """The photo with everything outside the mask dimmed and the mask's edge drawn."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(rgb.convert("RGB")).astype(np.float32)
    if dim:
        pixels = np.where(mask[..., None], pixels, pixels * 0.35 + 20)
    edge = _outline(mask, max(1, round(max(mask.shape) / 120)))
    pixels[edge] = colour
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def render_photo(photo_path: str, mask_path: str | None, side: int) -> QImage:
    rgb = _decoded_photo(photo_path)
    rgb.thumbnail((side, side))
    if mask_path:
        rgb = overlay_mask(rgb, mask_array(mask_path, rgb.size))
    return pil_to_qimage(rgb)


def render_item(image_path: str, mask_paths: Sequence[str], side: int) -> QImage:
    """A dataset item with each concept's mask outlined in its own colour."""
    from PIL import Image

    with Image.open(image_path) as im:
        rgb = im.convert("RGB")
    # Fit the cell both ways: a test-profile item is only 64 pixels.
    scale = side / max(rgb.size)
    rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
                     Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    for k, mask_path in enumerate(mask_paths):
        rgb = overlay_mask(rgb, mask_array(mask_path, rgb.size),
                           ITEM_COLOURS[k % len(ITEM_COLOURS)], dim=False)
    return pil_to_qimage(rgb)


def render_cutout(path: str, side: int) -> QImage:
    from PIL import Image

    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    rgba.thumbnail((side, side))
    return pil_to_qimage(rgba)


def render_editor_images(photo_path: str, mask_path: str | None,
                         max_side: int) -> tuple[QImage, QImage, float]:
    """(photo, mask as an 8-bit alpha image, scale) for the mask editor, at most max_side
    pixels long; scale = shown pixels per photo pixel."""
    import numpy as np
    from PIL import Image

    rgb = _decoded_photo(photo_path)
    full_w = rgb.width
    rgb.thumbnail((max_side, max_side))
    if mask_path:
        mask = np.where(mask_array(mask_path, rgb.size), 255, 0).astype(np.uint8)
    else:
        mask = np.zeros((rgb.height, rgb.width), np.uint8)
    grey = Image.fromarray(mask, "L")
    mask_image = QImage(grey.tobytes(), grey.width, grey.height, grey.width,
                        QImage.Format.Format_Alpha8).copy()
    return pil_to_qimage(rgb), mask_image, rgb.width / full_w


# --------------------------------------------------------------------------- the loader


class _Relay(QObject):
    done = Signal(object, object, str)  # key, result (or None), error text


class _Task(QRunnable):
    def __init__(self, relay: _Relay, key: Any, fn: Callable[..., Any], args: tuple) -> None:
        super().__init__()
        self.relay, self.key, self.fn, self.args = relay, key, fn, args

    def run(self) -> None:
        try:
            result, error = self.fn(*self.args), ""
        except Exception as exc:  # a damaged file costs its thumbnail, never the app
            result, error = None, f"{type(exc).__name__}: {exc}"
        self.relay.done.emit(self.key, result, error)


class BackgroundLoader(QObject):
    """Runs small reads (thumbnails, model statuses) on a private pool and caches them by key;
    `ready(key, result)` arrives on the GUI thread."""

    ready = Signal(object, object)
    failed = Signal(object, str)

    def __init__(self, parent: QObject | None = None, cache_size: int = 600,
                 threads: int = 1) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        # One thread: the worker process owns the other core while a job runs.
        self.pool.setMaxThreadCount(threads)
        self._relay = _Relay(self)
        self._relay.done.connect(self._finished)
        self._cache: OrderedDict[Any, Any] = OrderedDict()
        self._cache_size = cache_size
        self._pending: set[Any] = set()
        self._closed = False

    def cached(self, key: Any) -> Any:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        return None

    def request(self, key: Any, fn: Callable[..., Any], *args: Any, fresh: bool = False) -> Any:
        """The cached result now, or None and `ready` later. `fresh`: a polled read of
        something that moves (a running job's files): always read again, never answered
        from the cache."""
        if fresh:
            self._cache.pop(key, None)
        hit = self.cached(key)
        if hit is not None or self._closed:
            return hit
        if key not in self._pending:
            self._pending.add(key)
            self.pool.start(_Task(self._relay, key, fn, args))
        return None

    def forget(self, predicate: Callable[[Any], bool]) -> None:
        for key in [k for k in self._cache if predicate(k)]:
            del self._cache[key]

    def busy(self) -> bool:
        return bool(self._pending)

    def shutdown(self) -> None:
        """Drop queued work and wait for the one in progress (a few milliseconds)."""
        self._closed = True
        self.pool.clear()
        self.pool.waitForDone()
        self._pending.clear()

    def _finished(self, key: Any, result: Any, error: str) -> None:
        self._pending.discard(key)
        if self._closed:
            return
        if result is None:
            self.failed.emit(key, error)
            return
        self._cache[key] = result
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        self.ready.emit(key, result)
