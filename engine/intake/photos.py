"""Safe photo intake: read, check and normalise image files, and import them into a project.

Only allow-listed formats are opened (JPEG, PNG, WebP, BMP, TIFF, GIF; AVIF when this Pillow
reads it; HEIC/HEIF when pillow-heif is installed). The pixel count is checked from the header
before anything is decoded, so a decompression bomb is an error, never a warning. Every file is
decoded in full at intake, so a truncated or damaged file is refused with its name, not found
out later in the middle of a training run.

Normalisation (`decode_image`): first frame of an animation, EXIF orientation applied, the
embedded colour profile converted to sRGB, every mode turned into 8-bit RGB plus an optional
alpha channel; 16-bit and 32-bit greyscale are scaled to 8 bits, never clamped.

The original bytes are stored in the project untouched and content-addressed; `load_photo`
re-applies the same deterministic normalisation when a stage needs the pixels.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import InputError, first_line

if TYPE_CHECKING:
    from PIL import Image

    from engine.project import Photo, Project

MAX_PIXELS = 64_000_000  # a 64-megapixel photo decodes to ~200 MB of RGB; more is refused
MAX_FILE_BYTES = 200 * 1024 * 1024
MIN_SIDE = 32  # smaller sides carry no usable object (a 1×5000 strip, an icon)
MAX_PHOTOS_PER_CONCEPT = 20

# Pillow format id -> extension the original is stored under in the project.
FORMAT_EXTENSIONS: dict[str, str] = {
    "JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp",
    "TIFF": "tiff", "GIF": "gif", "AVIF": "avif", "HEIF": "heic",
}  # fmt: skip
_OPTIONAL_PLUGINS = {"HEIF": "pillow-heif", "AVIF": "pillow-avif-plugin"}
# ISO-BMFF brands (bytes 8..12 of an `ftyp` box) of HEIF-family files, for a precise error.
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
_ORIENTATION = 0x0112  # the EXIF tag exif_transpose reads
# What a Pillow plugin raises on a damaged or truncated file.
_DECODE_ERRORS = (SyntaxError, IndexError, TypeError, struct.error, ValueError, OSError, EOFError)


@lru_cache(maxsize=1)
def readable_formats() -> tuple[str, ...]:
    """The Pillow formats intake opens on this computer (optional plugins included)."""
    from PIL import Image, features

    try:  # HEIC/HEIF exists only with the pillow-heif plugin
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:
        pass
    Image.init()
    wanted = ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"]
    if "AVIF" in Image.OPEN and features.check("avif"):
        wanted.append("AVIF")
    if "HEIF" in Image.OPEN:
        wanted.append("HEIF")
    return tuple(wanted)


@dataclass(frozen=True)
class DecodedImage:
    """A photo as the pipeline sees it: upright 8-bit sRGB pixels, alpha kept apart."""

    rgb: Image.Image  # mode "RGB", EXIF orientation applied
    alpha: Image.Image | None  # mode "L", or None when the file has no transparency
    format: str  # Pillow format id, e.g. "JPEG"
    frames: int = 1
    notes: tuple[str, ...] = ()

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.size

    def rgba(self) -> Image.Image:
        out = self.rgb.convert("RGBA")
        if self.alpha is not None:
            out.putalpha(self.alpha)
        return out

    def rgb_on_white(self) -> Image.Image:
        """RGB with transparent parts shown white, the view a segmenter is given."""
        if self.alpha is None:
            return self.rgb
        from PIL import Image

        white = Image.new("RGB", self.rgb.size, (255, 255, 255))
        return Image.composite(self.rgb, white, self.alpha)


# --------------------------------------------------------------------------- decoding


def _sniff_unsupported(prefix: bytes, name: str) -> str | None:
    """A precise reason for a known format we cannot read here, else None."""
    if prefix[4:8] == b"ftyp":
        brand = prefix[8:12]
        if brand in _HEIF_BRANDS:
            return f"unsupported format .heic (install {_OPTIONAL_PLUGINS['HEIF']})"
        if brand in _AVIF_BRANDS:
            return f"unsupported format .avif (install {_OPTIONAL_PLUGINS['AVIF']})"
    suffix = Path(name).suffix.lower()
    if suffix in (".heic", ".heif"):
        return f"unsupported format {suffix} (install {_OPTIONAL_PLUGINS['HEIF']})"
    return None


def _open_allowed(data: bytes, name: str) -> Image.Image:
    """Open with only the allow-listed plugins, without Pillow's bomb check (ours is stricter
    and an error, and must not depend on the process-wide Image.MAX_IMAGE_PIXELS)."""
    from PIL import Image

    prefix = data[:16]
    damaged: str | None = None
    for fmt in readable_formats():
        factory, accept = Image.OPEN[fmt]
        if accept is not None:
            verdict = accept(prefix)
            if not verdict or isinstance(verdict, str):
                continue
        try:
            return factory(io.BytesIO(data), name)
        except _DECODE_ERRORS as exc:
            damaged = damaged or f"damaged {fmt} header ({first_line(exc)})"
    if damaged:
        raise InputError(f"{name}: {damaged}")
    reason = _sniff_unsupported(prefix, name)
    if reason:
        raise InputError(f"{name}: {reason}")
    if not data:
        raise InputError(f"{name}: empty file (0 bytes), not an image")
    allowed = ", ".join(FORMAT_EXTENSIONS[f] for f in readable_formats())
    raise InputError(f"{name}: not an image, or not a format read here ({allowed})")


def starts_like_a_photo(path: str | Path) -> bool:
    """Whether a file begins with the signature of a format intake reads: a look at 16 bytes,
    for guesses made before the import (which decodes every file in full and may still refuse
    a damaged one)."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            prefix = f.read(16)
    except OSError:
        return False
    for fmt in readable_formats():
        _factory, accept = Image.OPEN[fmt]
        verdict = accept(prefix) if accept is not None else False
        if verdict and not isinstance(verdict, str):
            return True
    return False


def _check_dimensions(width: int, height: int, name: str) -> None:
    if width * height > MAX_PIXELS:
        raise InputError(
            f"{name}: image too large: {width}×{height} pixels exceeds the "
            f"{MAX_PIXELS // 1_000_000}-megapixel limit"
        )
    if min(width, height) < MIN_SIDE:
        raise InputError(
            f"{name}: image too small: {width}×{height} pixels (each side needs at least "
            f"{MIN_SIDE})"
        )


def _to_srgb(im: Image.Image, notes: list[str]) -> Image.Image:
    """Convert through the embedded ICC profile when there is one (CMYK, wide-gamut RGB)."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "CMYK"):
        return im
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(
            im, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        notes.append(f"colour profile ignored ({first_line(exc)})")
        return im
    return converted if converted is not None else im


def _scale_to_8bit(im: Image.Image) -> Image.Image:
    """16/32-bit integer or float greyscale -> 8-bit "L", by scaling the value range.

    "I;16*" spans 0..65535 by definition. A 32-bit "I" or float "F" image says nothing of its
    range, so its values are read as 8-bit when they fit, as 16-bit (or 0..1 for floats) when
    those fit, and are stretched otherwise; they are never clamped.
    """
    import numpy as np
    from PIL import Image

    values = np.asarray(im).astype(np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if im.mode.startswith("I;16"):
        scaled = values / 257.0
    elif low >= 0 and high <= (1.0 if im.mode == "F" else 255.0):
        scaled = values * (255.0 if im.mode == "F" else 1.0)
    elif im.mode == "I" and low >= 0 and high <= 65535:
        scaled = values / 257.0
    else:
        scaled = (values - low) * (255.0 / (high - low or 1.0))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _normalise_mode(im: Image.Image, notes: list[str]) -> tuple[Image.Image, Image.Image | None]:
    """Any Pillow mode -> (RGB, alpha or None)."""
    if im.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return _scale_to_8bit(im).convert("RGB"), None
    alpha: Image.Image | None = None
    if im.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        alpha = rgba.getchannel("A")
        if alpha.getextrema() == (255, 255):  # an alpha channel that hides nothing
            alpha = None
        icc = im.info.get("icc_profile")
        im = rgba.convert("RGB")
        if icc:
            im.info["icc_profile"] = icc
    elif im.mode == "CMYK":
        notes.append("CMYK converted to RGB")
    im = _to_srgb(im, notes)
    return (im if im.mode == "RGB" else im.convert("RGB")), alpha


def decode_image(data: bytes, name: str) -> DecodedImage:
    """Check and normalise image bytes; InputError naming `name` when they are unusable."""
    from PIL import ImageOps

    if len(data) > MAX_FILE_BYTES:
        raise InputError(
            f"{name}: file too large ({len(data) / 2**20:.0f} MB; at most "
            f"{MAX_FILE_BYTES // 2**20} MB)"
        )
    im = _open_allowed(data, name)
    _check_dimensions(*im.size, name)
    frames = int(getattr(im, "n_frames", 1) or 1)
    notes = [f"{frames} frames (animation or pages): the first is used"] if frames > 1 else []
    try:
        im.seek(0)
        im.load()
    except _DECODE_ERRORS as exc:
        text = first_line(exc)
        truncated = isinstance(exc, EOFError) or "truncat" in text.lower()
        reason = "truncated file" if truncated else f"damaged image data ({text})"
        raise InputError(f"{name}: {reason}") from exc
    fmt = str(im.format or "")
    try:
        # exif_transpose copies even an upright photo (137 MB more for 48 megapixels).
        upright = im if im.getexif().get(_ORIENTATION, 1) == 1 else ImageOps.exif_transpose(im)
    except (OSError, ValueError, SyntaxError, struct.error) as exc:
        notes.append(f"EXIF orientation ignored ({first_line(exc)})")
        upright = im
    if upright.size != im.size:
        notes.append("rotated upright from its EXIF orientation")
    # exif_transpose returns a copy without the ICC profile; keep it for the colour conversion.
    if "icc_profile" in im.info:
        upright.info["icc_profile"] = im.info["icc_profile"]
    rgb, alpha = _normalise_mode(upright, notes)
    return DecodedImage(rgb=rgb, alpha=alpha, format=fmt, frames=frames, notes=tuple(notes))


def read_image_file(path: str | Path) -> tuple[bytes, DecodedImage]:
    """(original bytes, decoded image) of a file; InputError naming the file on any problem."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(
                f"{p.name}: file too large ({size / 2**20:.0f} MB; at most "
                f"{MAX_FILE_BYTES // 2**20} MB)"
            )
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{p.name}: no such file ({p})") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{p.name}: is a folder, not an image file") from exc
    except OSError as exc:
        raise InputError(f"{p.name}: cannot be read ({exc.strerror or exc})") from exc
    return data, decode_image(data, p.name)


def load_photo(project: Project, photo: Photo) -> DecodedImage:
    """The stored original of `photo`, normalised exactly as at intake."""
    path = project.abspath(photo.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{photo.original_name or photo.file}: the photo's file is missing "
                         f"from the project ({path})") from exc
    return decode_image(data, photo.original_name or Path(photo.file).name)


# --------------------------------------------------------------------------- import
