"""Masks as the whole engine handles them: bool arrays (True = object) of shape (h, w).

One definition of each conversion, box and encoding: every stage and the window read and
write masks through these, so a mask file means the same thing everywhere (an L-mode PNG,
255 inside, 0 outside; read back at >= 128).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import InputError

if TYPE_CHECKING:
    from PIL import Image

THRESHOLD = 128  # a grey or alpha value at or above this is object


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the True pixels, end exclusive; None for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def mask_to_image(mask: np.ndarray) -> Image.Image:
    from PIL import Image

    # uint8 from the start: np.where(mask, 255, 0) would make an int64 array (8 bytes a pixel).
    return Image.fromarray(np.where(mask, np.uint8(255), np.uint8(0)), mode="L")


def image_to_mask(image: Image.Image) -> np.ndarray:
    """A grey (or colour) image as a mask; for an alpha channel pass image.getchannel("A")."""
    return np.asarray(image.convert("L")) >= THRESHOLD


def png_bytes(image: Image.Image, text: Mapping[str, str] | None = None) -> bytes:
    """The one PNG encoder of the engine (the same settings give the same bytes, so the
    content-addressed store de-duplicates). `text` adds text chunks (tEXt, or iTXt when a
    value is not Latin-1), e.g. a generated picture's recipe."""
    buf = io.BytesIO()
    if text:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
        image.save(buf, format="PNG", optimize=False, compress_level=6, pnginfo=info)
    else:
        image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def mask_png(mask: np.ndarray) -> bytes:
    """A mask as an L-mode PNG, 0 outside and 255 inside."""
    return png_bytes(mask_to_image(mask))


def read_mask(source: str | bytes | io.BytesIO) -> np.ndarray:
    """A mask file (path or bytes) as a bool array."""
    from PIL import Image

    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    with Image.open(stream) as im:
        return image_to_mask(im)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale a mask to (width, height) with smooth edges: shrinking averages (thin parts fade
    instead of aliasing); enlarging interpolates linearly in uint8 and thresholds at one half
    (a 48-megapixel mask costs 2 x 48 MB, not the 4 x 192 MB of float arrays)."""
    import cv2

    w, h = size
    if mask.shape == (h, w):
        return mask.astype(bool)
    cv2.setNumThreads(1)  # the job already owns a core; OpenCV's pool only oversubscribes
    if w < mask.shape[1]:
        return cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5
    small = np.where(mask, np.uint8(255), np.uint8(0))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) >= THRESHOLD


def keep_main_component(mask: np.ndarray, positive: Sequence[tuple[float, float]] = (),
                        keep_fraction: float | None = None) -> np.ndarray:
    """The largest 8-connected part, plus every part a `positive` point (x, y) lies in; with
    `keep_fraction`, also every part at least that fraction of the largest (a concept cut in
    two by another in front of it keeps both halves)."""
    import cv2

    cv2.setNumThreads(1)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                               connectivity=8)
    if count <= 1:
        return np.zeros(mask.shape, bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = {1 + int(np.argmax(areas))}
    if keep_fraction is not None:
        keep |= {i + 1 for i, area in enumerate(areas) if area >= keep_fraction * areas.max()}
    keep |= labels_at(labels, positive) - {0}
    return np.isin(labels, sorted(keep))


def fill_holes(mask: np.ndarray, keep_open: Sequence[tuple[float, float]] = (),
               free: np.ndarray | None = None) -> np.ndarray:
    """Close the holes of `mask`: background regions (4-connected) it encloses, that is not
    touching the border. A hole holding a `keep_open` point (x, y) stays open (the user opened
    it on purpose); with `free`, a hole is closed only with free pixels (another concept seen
    through a hole keeps its pixels)."""
    import cv2

    cv2.setNumThreads(1)
    count, labels = cv2.connectedComponents((~mask).astype(np.uint8), connectivity=4)
    if count <= 1:
        return mask.copy()
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    outside = set(np.unique(edge).tolist()) | labels_at(labels, keep_open)
    holes = [label for label in range(1, count) if label not in outside]
    if not holes:
        return mask.copy()
    filled = np.isin(labels, holes)
    return mask | (filled & free if free is not None else filled)


def labels_at(labels: np.ndarray, points: Sequence[tuple[float, float]]) -> set[int]:
    """The labels under the points (x, y) that lie inside the labelling."""
    h, w = labels.shape
    out = set()
    for x, y in points:
        xi, yi = round(float(x)), round(float(y))
        if 0 <= xi < w and 0 <= yi < h:
            out.add(int(labels[yi, xi]))
    return out


def read_cutout(path: str | Path, name: str) -> Image.Image | None:
    """A cut-out file (RGBA: alpha at or above THRESHOLD is the object) trimmed to its visible
    pixels; None when it is fully transparent. InputError naming `name` when unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            rgba = im.convert("RGBA")
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"The cut-out {name} cannot be read ({exc})") from exc
    box = rgba.getchannel("A").point(lambda a: 255 if a >= THRESHOLD else 0).getbbox()
    return rgba.crop(box) if box else None


def _shifted_max(mask: np.ndarray, radius: int, axis: int) -> np.ndarray:
    padded = np.pad(mask, [(radius, radius) if a == axis else (0, 0) for a in range(2)],
                    mode="edge")
    n = mask.shape[axis]
    out = np.zeros_like(mask)
    for offset in range(2 * radius + 1):
        out |= padded[offset:offset + n] if axis == 0 else padded[:, offset:offset + n]
    return out


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow a bool mask by `radius` pixels (square neighbourhood; edges repeat outward)."""
    if radius <= 0:
        return mask.copy()
    return _shifted_max(_shifted_max(mask, radius, 0), radius, 1)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Shrink a bool mask by `radius` pixels (the dual of dilate)."""
    return ~dilate(~mask, radius)
