"""A recipe: everything needed to make one generated picture again.

Stored twice: as the generation's `settings` in the catalogue (plus the batch it belongs to)
and in the PNG's text chunks, so it travels with the file:

* `mycanvas_recipe`: the recipe as JSON (what `mycanvas generate --recipe FILE` reads);
* `parameters`: the same in the plain-text form other Stable Diffusion tools write and show
  ("prompt / Negative prompt: ... / Steps: 30, Sampler: ..., CFG scale: 7.5, Seed: ...").

Same recipe, same pixels on a CPU (same thread count and library versions: tested). On CUDA
the same recipe gives the same picture to within float rounding: some GPU kernels do not add
up in a fixed order. The initial noise is always drawn on the CPU from the seed, so a seed
paints the same composition on every device.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.image_files import MAX_RECIPE_CHARS, RECIPE_FORMAT, parse_recipe_json, recipe_chunk
from engine.image_files import RECIPE_KEY as PNG_RECIPE_KEY

RECIPE_VERSION = 1
PNG_PARAMETERS_KEY = "parameters"
MAX_SEED = 2**63 - 1  # a catalogue INTEGER
MAX_SIDE = 4096
# Limits of a recipe, checked before it is parsed, stored or given to a model. CLIP reads 77
# tokens of a prompt, so 2000 characters is far more than any prompt can use.
MAX_PROMPT_CHARS = 2000
MAX_NAME_CHARS = 256  # scheduler, profile, device, versions...
MAX_PATH_CHARS = 4096
MAX_BOXES = 64
_TEXT_LIMITS = {"prompt": MAX_PROMPT_CHARS, "negative_prompt": MAX_PROMPT_CHARS}


def _number(data: dict[str, Any], key: str, low: float, high: float, where: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or not low <= value <= high:
        raise InputError(f"{where}: {key} must be a number from {low:g} to {high:g}, "
                         f"got {value!r}")
    return float(value)


def _whole(data: dict[str, Any], key: str, low: int, high: int, where: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{where}: {key} must be a whole number from {low} to {high}, "
                         f"got {value!r}")
    return value


def _text(data: dict[str, Any], key: str, where: str, empty: bool = True) -> str:
    value = data.get(key, "" if empty else None)
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise InputError(f"{where}: {key} must be text, got {_shown(value)}")
    check_text_size(value, key, where, _TEXT_LIMITS.get(key, MAX_NAME_CHARS))
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_text_size(value: str, field: str, where: str, limit: int = MAX_PROMPT_CHARS) -> None:
    """A text field of a recipe or a request is at most `limit` characters."""
    if len(value) > limit:
        raise InputError(f"{where}: {field} is {len(value):,} characters long; at most "
                         f"{limit:,} are allowed")


@dataclass(frozen=True)
class LayoutBox:
    """Where one concept goes: its token and a box (x, y, w, h) in 0..1 of the canvas."""

    token: str
    x: float
    y: float
    w: float
    h: float

    def __post_init__(self) -> None:
        check_box(self.token, self.x, self.y, self.w, self.h)

    @classmethod
    def from_corners(cls, token: str, corners: Any) -> LayoutBox:
        """From [x0, y0, x1, y1] (the command line's --box), checked to lie on the canvas."""
        if not isinstance(corners, (list, tuple)) or len(corners) != 4 or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) for v in corners):
            raise InputError(f"The box for {token} must be four numbers X0 Y0 X1 Y1, "
                             f"got {corners!r}")
        x0, y0, x1, y1 = (float(v) for v in corners)
        return cls(token, x0, y0, x1 - x0, y1 - y0)


def check_box(name: str, x: float, y: float, w: float, h: float) -> None:
    """A box must lie on the canvas (0..1 each way, rounding allowed) and not be empty."""
    values = (x, y, w, h)
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        raise InputError(f"The box for {name} must be finite numbers, got {values!r}")
    slack = 1e-6
    if x < -slack or y < -slack or x + w > 1 + slack or y + h > 1 + slack:
        raise InputError(f"The box for {name} ({x:g}, {y:g} to {x + w:g}, {y + h:g}) is "
                         "outside the canvas: corners go from 0 to 1")
    if w <= 0 or h <= 0:
        raise InputError(f"The box for {name} is empty: X1 must be above X0 and Y1 above Y0")


@dataclass(frozen=True)
class LayoutSpec:
    """Layout guidance: the boxes, how strongly they steer attention, for how much of the
    denoising, and the project layout they came from (if any)."""

    boxes: tuple[LayoutBox, ...]
    strength: float = 1.0
    guided_fraction: float = 0.3
    layout_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"boxes": [asdict(b) for b in self.boxes], "strength": self.strength,
                "guided_fraction": self.guided_fraction, "layout_id": self.layout_id}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> LayoutSpec:
        if not isinstance(data, dict) or not isinstance(data.get("boxes"), list):
            raise InputError(f"{where}: layout must be an object with a list of boxes")
        boxes = []
        if len(data["boxes"]) > MAX_BOXES:
            raise InputError(f"{where}: layout has {len(data['boxes'])} boxes; at most "
                             f"{MAX_BOXES} are allowed")
        for i, raw in enumerate(data["boxes"]):
            if not isinstance(raw, dict):
                raise InputError(f"{where}: layout box {i} must be an object")
            token = _text(raw, "token", where, empty=False)
            boxes.append(LayoutBox(token, *(_number(raw, k, -1.0, 2.0, where)
                                            for k in ("x", "y", "w", "h"))))
        layout_id = data.get("layout_id")
        if layout_id is not None and (isinstance(layout_id, bool)
                                      or not isinstance(layout_id, int)):
            raise InputError(f"{where}: layout_id must be a layout id, got {layout_id!r}")
        return cls(tuple(boxes), _number(data, "strength", 0.0, 100.0, where),
                   _number(data, "guided_fraction", 0.0, 1.0, where), layout_id)


@dataclass(frozen=True)
class Recipe:
    run_id: int
    run_kind: str
    run_fingerprint: str  # of the run's exported files (engine.generate.concepts)
    profile: str
    model: dict[str, str]  # the base model: source, revision, fingerprint
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    width: int
    height: int
    scheduler: str
    layout: LayoutSpec | None
    precision: str  # what it ran in (for the record; a recipe may be made on another device)
    device: str
    app_version: str

    def __post_init__(self) -> None:
        self.to_dict()  # every value must be JSON

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "layout"}
        data["layout"] = self.layout.to_dict() if self.layout is not None else None
        out = {"format": RECIPE_FORMAT, "version": RECIPE_VERSION, **data}
        try:
            json.dumps(out, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputError(f"A recipe must hold plain values: {exc}") from exc
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Any, where: str = "recipe") -> Recipe:
        """A recipe from its JSON values (a generation's settings, a file, a PNG chunk);
        other keys (the batch a generation belongs to) are ignored."""
        if not isinstance(data, dict) or data.get("format") != RECIPE_FORMAT:
            raise InputError(f"{where} is not a MyCanvas recipe")
        if not isinstance(data.get("version"), int) or data["version"] > RECIPE_VERSION:
            raise InputError(f"{where} was written by a newer version of MyCanvas Studio")
        model = data.get("model")
        if not isinstance(model, dict) or len(model) > 16 or \
                not all(isinstance(v, str) for v in model.values()):
            raise InputError(f"{where}: model must be an object of a few texts")
        for key, value in model.items():  # a source may be a folder's path: up to PATH_MAX
            check_text_size(str(key), "model", where, MAX_NAME_CHARS)
            check_text_size(value, f"model {key}", where, MAX_PATH_CHARS)
        side = (64, MAX_SIDE)
        layout = data.get("layout")
        return cls(
            run_id=_whole(data, "run_id", 1, MAX_SEED, where),
            run_kind=_text(data, "run_kind", where, empty=False),
            run_fingerprint=_text(data, "run_fingerprint", where),
            profile=_text(data, "profile", where, empty=False), model=dict(model),
            prompt=_text(data, "prompt", where, empty=False),
            negative_prompt=_text(data, "negative_prompt", where),
            seed=_whole(data, "seed", 0, MAX_SEED, where),
            steps=_whole(data, "steps", 1, 1000, where),
            guidance=_number(data, "guidance", 0.0, 50.0, where),
            width=_whole(data, "width", *side, where), height=_whole(data, "height", *side, where),
            scheduler=_text(data, "scheduler", where, empty=False),
            layout=None if layout is None else LayoutSpec.from_dict(layout, where),
            precision=_text(data, "precision", where), device=_text(data, "device", where),
            app_version=_text(data, "app_version", where))

    def png_text(self) -> dict[str, str]:
        """The PNG text chunks: our JSON, and the plain form other tools show."""
        lines = [self.prompt]
        if self.negative_prompt:
            lines.append(f"Negative prompt: {self.negative_prompt}")
        lines.append(f"Steps: {self.steps}, Sampler: {self.scheduler}, CFG scale: "
                     f"{self.guidance:g}, Seed: {self.seed}, Size: {self.width}x{self.height}, "
                     f"Model: {self.profile} ({self.model.get('source', '')}), "
                     f"Concepts: run {self.run_id}, Version: MyCanvas Studio {self.app_version}")
        return {PNG_RECIPE_KEY: self.to_json(), PNG_PARAMETERS_KEY: "\n".join(lines)}


def recipe_from_png(path: Path) -> Recipe:
    """The recipe a PNG we generated carries in its text chunk (read within the limits of
    engine.image_files: chunk sizes, decompression, image size, the recipe's size)."""
    data = recipe_chunk(path)
    if data is None:
        raise InputError(f"{path} carries no MyCanvas recipe (was it made by MyCanvas Studio?)")
    return Recipe.from_dict(data, str(path))


def _parse(text: str, where: Path) -> Recipe:
    return Recipe.from_dict(parse_recipe_json(text, where), str(where))


def read_recipe_file(path: Path) -> Recipe:
    """A recipe from a .json file or from a PNG's text chunk."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Recipe file not found: {path}")
    if path.suffix.lower() == ".png":
        return recipe_from_png(path)
    if path.stat().st_size > 4 * MAX_RECIPE_CHARS:  # UTF-8: at most 4 bytes a character
        raise InputError(f"{path}: {path.stat().st_size:,} bytes is too large for a recipe "
                         f"(at most {MAX_RECIPE_CHARS:,} characters)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable recipe file ({exc})") from exc
    return _parse(text, path)
