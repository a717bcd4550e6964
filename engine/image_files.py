"""Pictures and PNG text chunks read from files someone else may have made.

A PNG can carry text chunks of any size (a 56 MB prompt), compressed text that expands a
thousandfold (a zTXt bomb) or claim 20000×20000 pixels. Every reader of such a file goes
through here: the chunk headers are scanned first (lengths and the image size, a few bytes
each, before anything is decoded), then Pillow reads with its own limits (MAX_TEXT_CHUNK for
compressed text, the decompression-bomb guard as an error). Whatever goes wrong is one
InputError that names the file and the part of it that is refused.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError, first_line

if TYPE_CHECKING:
    from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Pillow's PngImagePlugin.MAX_TEXT_CHUNK (ImageFile.SAFEBLOCK): the most one text chunk may
# hold, raw or decompressed; Pillow itself enforces it only on compressed chunks.
MAX_TEXT_CHUNK = 1024 * 1024
MAX_PICTURE_SIDE = 8192  # our pictures are at most 4096 a side; twice that is refused
# The text chunk every MyCanvas PNG carries its recipe in (engine.generate.recipe writes it,
# the gallery's export and the catalogue's repair read it), and the recipe's limits, checked
# before its JSON is parsed.
RECIPE_KEY = "mycanvas_recipe"
RECIPE_FORMAT = "mycanvas-recipe"
MAX_RECIPE_CHARS = 64_000  # the recipe's JSON text
MAX_NESTING = 6  # recipe > layout > boxes > box is 4 levels
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
# Everything Pillow raises on a damaged or hostile file (a truncated chunk is a SyntaxError,
# a text chunk over its memory limit a ValueError, a bomb its own error class).
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error,
                  TypeError, zlib.error)


def _size_text(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def check_png_chunks(path: str | os.PathLike[str], max_text: int = MAX_TEXT_CHUNK,
                     max_side: int = MAX_PICTURE_SIDE) -> None:
    """Refuse a PNG whose header claims more than `max_side` pixels a side or whose text chunk
    is longer than `max_text` bytes, reading only the chunk headers. Not a PNG: no check."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != PNG_SIGNATURE:
                return
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return
                length, kind = struct.unpack(">I4s", head)
                if kind == b"IHDR":
                    width, height = struct.unpack(">II", f.read(8))
                    if max(width, height) > max_side:
                        raise InputError(f"{path}: the image is {width}×{height} pixels; "
                                         f"pictures here are at most {max_side} a side")
                    f.seek(length - 8 + 4, os.SEEK_CUR)
                    continue
                if kind in _TEXT_CHUNKS:
                    key = f.read(min(length, 80)).split(b"\0", 1)[0].decode("latin-1")
                    if length > max_text:
                        raise InputError(
                            f"{path}: its text chunk {key!r} holds {_size_text(length)}; "
                            f"at most {_size_text(max_text)} is read")
                    f.seek(-min(length, 80), os.SEEK_CUR)
                    _check_compressed_text(path, kind, key, f.read(length), max_text)
                    f.seek(4, os.SEEK_CUR)
                    continue
                if kind == b"IEND":
                    return
                f.seek(length + 4, os.SEEK_CUR)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from exc


def _check_compressed_text(path: str | os.PathLike[str], kind: bytes, key: str, data: bytes,
                           max_text: int) -> None:
    """A zTXt chunk, or an iTXt one with its compression flag, must not expand past
    `max_text` (a bomb of a few kB can expand to gigabytes): decompressed only that far."""
    rest = data.split(b"\0", 1)[1] if b"\0" in data else b""
    if kind == b"zTXt":
        compressed = rest[1:]
    elif kind == b"iTXt" and rest[:1] == b"\1":
        parts = rest[2:].split(b"\0", 2)
        compressed = parts[2] if len(parts) == 3 else b""
    else:
        return
    inflate = zlib.decompressobj()
    try:
        inflate.decompress(compressed, max_text)
    except zlib.error as exc:
        raise InputError(f"{path}: its text chunk {key!r} is damaged ({exc})") from exc
    if inflate.unconsumed_tail:
        raise InputError(f"{path}: its text chunk {key!r} expands past "
                         f"{_size_text(max_text)} when decompressed (refused)")


def _pillow_error(path: str | os.PathLike[str], exc: BaseException) -> InputError:
    from PIL import Image

    text = first_line(exc, 160)
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{path}: the file is missing")
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return InputError(f"{path}: the image is too large to open safely ({text})")
    if "decompressed data too large" in text.lower():
        return InputError(f"{path}: a compressed text chunk expands past "
                          f"{_size_text(MAX_TEXT_CHUNK)} (refused)")
    if "too much memory used in text chunks" in text.lower():
        return InputError(f"{path}: its text chunks hold too much text (refused)")
    return InputError(f"{path}: not a readable image ({text})")


def png_text(path: str | os.PathLike[str]) -> dict[str, str]:
    """The text chunks of a PNG, within the limits above; InputError names what is refused."""
    from PIL import Image, UnidentifiedImageError

    check_png_chunks(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return {str(k): str(v) for k, v in (getattr(image, "text", {}) or {}).items()}
    except (*_DECODE_ERRORS, UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise _pillow_error(path, exc) from exc


def nesting_depth(text: str) -> int:
    """How deeply the JSON `text` nests arrays and objects, without parsing it (a parser
    recurses once per level and runs out of stack on a hostile file)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_recipe_json(text: str, where: str | os.PathLike[str]) -> Any:
    """The JSON values of a recipe's text, its size and nesting checked before parsing."""
    if len(text) > MAX_RECIPE_CHARS:
        raise InputError(f"{where}: the recipe is {len(text):,} characters long; at most "
                         f"{MAX_RECIPE_CHARS:,} are read")
    if nesting_depth(text) > MAX_NESTING:
        raise InputError(f"{where}: the recipe nests more than {MAX_NESTING} levels deep; "
                         "it is not a MyCanvas recipe")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{where}: the recipe is not valid JSON ({exc})") from exc


def recipe_chunk(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The recipe a PNG carries in its RECIPE_KEY chunk, as JSON values (None when it carries
    none); InputError naming the file when the chunk is too big, too deep, not JSON or not a
    JSON object. What the fields mean is the reader's (engine.generate.Recipe)."""
    text = png_text(path).get(RECIPE_KEY)
    if text is None:
        return None
    recipe = parse_recipe_json(text, path)
    if not isinstance(recipe, dict):
        raise InputError(f"{path}: its recipe is not a JSON object")
    return recipe


def open_picture(path: str | os.PathLike[str], mode: str = "RGB") -> Image.Image:
    """A picture file decoded whole in `mode`, or one InputError naming the file."""
    from PIL import Image, UnidentifiedImageError

    check_png_chunks(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(Path(path)) as image:
                return image.convert(mode)
    except (*_DECODE_ERRORS, UnidentifiedImageError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise _pillow_error(path, exc) from exc
