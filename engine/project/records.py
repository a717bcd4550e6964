"""Records of the project catalogue: frozen dataclasses, validated where it is cheap.

A record with `id=None` has not been stored yet; the catalogue returns stored copies with
their id and timestamps filled in. Fields holding JSON in the catalogue (layout objects,
masks, scores, configs, settings) are plain Python values here, so records stay picklable
for the worker process.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InputError

REVIEW_STATES: tuple[str, ...] = ("auto-kept", "auto-rejected", "accepted", "rejected")
# cp-clip, ti-clip: Gen4Gen's pair; cd-text, cd-image: the Custom Diffusion evaluation's
# text and image alignment. Defined exactly in engine/score/metrics.py.
SCORE_METRICS: tuple[str, ...] = ("cp-clip", "ti-clip", "cd-text", "cd-image")
# Metrics of the whole image only (never per concept).
IMAGE_ONLY_METRICS: tuple[str, ...] = ("ti-clip", "cd-text")
RUN_STATUSES: tuple[str, ...] = ("queued", "running", "finished", "failed", "cancelled",
                                 "interrupted")

# Boxes come from float arithmetic (solver, JSON round trips); allow rounding at the edge.
_BOX_SLACK = 1e-6


def now_iso() -> str:
    """A UTC timestamp for created_at / finished_at columns."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _check_id(value: Any, field_name: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{field_name} must be an integer id, got {value!r}")


def check_choice(value: Any, allowed: tuple[str, ...], field_name: str) -> None:
    if value not in allowed:
        raise InputError(f"{field_name} must be one of {', '.join(allowed)}; got {value!r}")


def _finite(value: Any, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{field_name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"{field_name} must be a finite number, got {value!r}")
    return number


def to_json(value: Any, field_name: str) -> str:
    """JSON text for a catalogue column; NaN and non-JSON values are refused by field name."""
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{field_name} cannot be stored as JSON: {exc}") from exc


@dataclass(frozen=True, kw_only=True)
class Concept:
    id: int
    name: str
    token: str
    class_word: str
    created_at: str = ""


@dataclass(frozen=True, kw_only=True)
class Photo:
    id: int
    concept_id: int
    sha256: str
    file: str
    original_name: str
    width: int
    height: int
    added_at: str = ""


@dataclass(frozen=True, kw_only=True)
class Mask:
    id: int
    photo_id: int
    concept_id: int
    file: str
    cutout_file: str | None = None
    method: str = ""
    quality: float | None = None
    created_at: str = ""
    profile: str = ""  # the profile whose segmenter made it ('' unknown: made before v6)
    test_model: bool = False  # that segmenter was a test model: the mask is noise
    flag: str = ""  # why the mask is likely wrong (nearly the whole frame, a fragment), or ''


@dataclass(frozen=True)
class LayoutObject:
    """One concept placed on the canvas: box (x, y, w, h) in 0..1 of the canvas, z-order."""

    concept_id: int
    x: float
    y: float
    w: float
    h: float
    z: int = 0

    def __post_init__(self) -> None:
        _check_id(self.concept_id, "LayoutObject.concept_id")
        for name in ("x", "y", "w", "h"):
            number = _finite(getattr(self, name), f"LayoutObject.{name}")
            lowest_ok = number > 0 if name in ("w", "h") else number >= 0
            if not (lowest_ok and number <= 1):
                bounds = "in (0, 1]" if name in ("w", "h") else "in [0, 1]"
                raise InputError(f"LayoutObject.{name} must be {bounds}, got {number!r}")
            # Stored as float so a box equals itself after a JSON round trip.
            object.__setattr__(self, name, number)
        if self.x + self.w > 1 + _BOX_SLACK:
            raise InputError(f"LayoutObject.x + w must be at most 1, got {self.x + self.w!r}")
        if self.y + self.h > 1 + _BOX_SLACK:
            raise InputError(f"LayoutObject.y + h must be at most 1, got {self.y + self.h!r}")
        if isinstance(self.z, bool) or not isinstance(self.z, int):
            raise InputError(f"LayoutObject.z must be an integer, got {self.z!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"concept_id": self.concept_id, "x": self.x, "y": self.y, "w": self.w,
                "h": self.h, "z": self.z}

    @classmethod
    def from_dict(cls, data: Any) -> LayoutObject:
        if not isinstance(data, dict):
            raise InputError(f"Layout object must be a JSON object, got {data!r}")
        missing = [k for k in ("concept_id", "x", "y", "w", "h") if k not in data]
        if missing:
            raise InputError(f"Layout object is missing {', '.join(missing)}")
        return cls(data["concept_id"], data["x"], data["y"], data["w"], data["h"],
                   data.get("z", 0))


@dataclass(frozen=True, kw_only=True)
class Layout:
    scene: str
    caption: str = ""
    objects: tuple[LayoutObject, ...] = ()
    source: str = ""
    seed: int | None = None
    id: int | None = None
    created_at: str = ""

    def __post_init__(self) -> None:
        objects = tuple(self.objects)
        for obj in objects:
            if not isinstance(obj, LayoutObject):
                raise InputError(f"Layout.objects must hold LayoutObject values, got {obj!r}")
        object.__setattr__(self, "objects", objects)
        _check_id(self.seed, "Layout.seed", optional=True)
        _check_id(self.id, "Layout.id", optional=True)

    def objects_json(self) -> str:
        return to_json([obj.to_dict() for obj in self.objects], "Layout.objects")

    @staticmethod
    def objects_from_json(text: str | None) -> tuple[LayoutObject, ...]:
        try:
            data = json.loads(text or "[]")
        except json.JSONDecodeError as exc:
            raise InputError(f"Layout.objects is not valid JSON: {exc}") from exc
        if not isinstance(data, list):
            raise InputError("Layout.objects must be a JSON list")
        return tuple(LayoutObject.from_dict(item) for item in data)


@dataclass(frozen=True, kw_only=True)
class DatasetItem:
    """A composed training image: `masks` maps concept id -> mask file (project-relative).

    `build_index` is the item's place in the dataset build (unique; the resume key) and
    `provenance` how it was made (seed, settings, cut-outs, placed boxes), as JSON values.
    """

    image_file: str
    caption: str = ""
    token_caption: str | None = None
    layout_id: int | None = None
    masks: dict[int, str] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    review_state: str = "auto-kept"
    reasons: str = ""
    build_index: int | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    created_at: str = ""

    def __post_init__(self) -> None:
        check_choice(self.review_state, REVIEW_STATES, "DatasetItem.review_state")
        _check_id(self.layout_id, "DatasetItem.layout_id", optional=True)
        _check_id(self.build_index, "DatasetItem.build_index", optional=True)
        if self.build_index is not None and self.build_index < 0:
            raise InputError(f"DatasetItem.build_index must be >= 0, got {self.build_index!r}")
        masks: dict[int, str] = {}
        for key, value in dict(self.masks).items():
            # JSON object keys come back as strings; concept ids are ints.
            try:
                concept_id = int(key)
            except (TypeError, ValueError) as exc:
                msg = f"DatasetItem.masks keys must be concept ids, got {key!r}"
                raise InputError(msg) from exc
            if not isinstance(value, str):
                raise InputError(f"DatasetItem.masks[{key!r}] must be a file path, got {value!r}")
            masks[concept_id] = value
        scores = {str(k): _finite(v, f"DatasetItem.scores[{k!r}]") for k, v in
                  dict(self.scores).items()}
        # Copies, so a caller mutating its dict cannot change a frozen record.
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "provenance", dict(self.provenance))


@dataclass(frozen=True, kw_only=True)
class Run:
    """A training or extraction run. `status` is checked against RUN_STATUSES when written,
    not here, so a catalogue holding a status this version does not know still reads."""

    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    status: str = "queued"
    output_dir: str | None = None
    dataset_snapshot: str | None = None
    metrics_file: str | None = None
    id: int | None = None
    created_at: str = ""
    finished_at: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not self.kind.strip():
            raise InputError(f"Run.kind must be a non-empty name, got {self.kind!r}")
        object.__setattr__(self, "config", dict(self.config))


@dataclass(frozen=True, kw_only=True)
class Generation:
    """A generated picture and its recipe (`settings`). The gallery's marks: `favourite`,
    `rating` (1..5 or None) and `deleted_at` (set while it is in the trash; its image then
    lives under trash/). A new generation is never a favourite, unrated and not trashed:
    add_generation ignores those three."""

    prompt: str
    seed: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    image_file: str | None = None
    run_id: int | None = None
    id: int | None = None
    created_at: str = ""
    favourite: bool = False
    rating: int | None = None
    deleted_at: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise InputError(f"Generation.prompt must be text, got {self.prompt!r}")
        _check_id(self.seed, "Generation.seed", optional=True)
        _check_id(self.run_id, "Generation.run_id", optional=True)
        check_rating(self.rating)
        object.__setattr__(self, "favourite", bool(self.favourite))
        object.__setattr__(self, "settings", dict(self.settings))

    @property
    def trashed(self) -> bool:
        return self.deleted_at is not None


def check_rating(rating: Any) -> None:
    """A rating is None (unrated) or a whole number of stars from 1 to 5."""
    if rating is None:
        return
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise InputError(f"rating must be 1 to 5 stars (or none), got {rating!r}")


@dataclass(frozen=True, kw_only=True)
class Score:
    """One metric of one generated image: per concept (concept_id set) or of the whole image
    (concept_id None; for cp-clip and cd-image that is the mean over the image's concepts).

    How it was made: `box` ([x, y, w, h] in 0..1 of the image) and `confidence` of the
    detection a concept's CP-CLIP used (None: not detected, the score is 0), `model` (the
    models that scored it), `test_model` (True when those were the tiny test models: the
    number then means nothing), `details` (threshold, reference count, ...), `scored_at`.
    """

    generation_id: int
    metric: str
    value: float
    concept_id: int | None = None
    id: int | None = None
    box: tuple[float, float, float, float] | None = None
    confidence: float | None = None
    model: str = ""
    test_model: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    scored_at: str = ""

    def __post_init__(self) -> None:
        _check_id(self.generation_id, "Score.generation_id")
        check_choice(self.metric, SCORE_METRICS, "Score.metric")
        _check_id(self.concept_id, "Score.concept_id", optional=True)
        if self.metric in IMAGE_ONLY_METRICS and self.concept_id is not None:
            raise InputError(f"Score.concept_id must be empty for a {self.metric} score")
        object.__setattr__(self, "value", _finite(self.value, "Score.value"))
        if self.box is not None:
            box = tuple(_finite(v, "Score.box") for v in self.box)
            x, y, w, h = box if len(box) == 4 else (0.0, 0.0, 0.0, 0.0)
            if len(box) != 4 or min(x, y) < -_BOX_SLACK or w <= 0 or h <= 0 or \
                    x + w > 1 + _BOX_SLACK or y + h > 1 + _BOX_SLACK:
                raise InputError(f"Score.box must be [x, y, w, h] inside 0..1, got {self.box!r}")
            object.__setattr__(self, "box", box)
        if self.confidence is not None:
            object.__setattr__(self, "confidence",
                               _finite(self.confidence, "Score.confidence"))
        object.__setattr__(self, "test_model", bool(self.test_model))
        object.__setattr__(self, "details", dict(self.details))
