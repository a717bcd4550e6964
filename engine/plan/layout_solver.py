"""LayoutSolver: boxes for a group of objects on a square canvas, valid by construction.

The planner's LLM only says things in words (which scene, who is left of whom, what stands on
what); this module owns the geometry. It places one box per object from real-world size
priors and each cut-out's aspect ratio, honours the relations it can, rests objects on a
ground band, and keeps Gen4Gen's rules: object sizes within 0.4..1.0 of the biggest, the
smallest box at least (H/5)² for up to 3 objects, (H/6)² for 4 and (H/8)² for more, no two
boxes overlapping above a configurable IoU, everything inside the canvas. Layouts are
sampled from a seeded generator, so one group yields many distinct layouts; when sampling
finds nothing valid the solver drops relations, and as a last resort places the objects on
a grid that is valid for any input it accepts.

Coordinates are fractions of the canvas: x, y of the top-left corner, w, h; z is the drawing
order (0 drawn first), nearer objects (lower bottom edge) on top. Pure Python with
random.Random, so it is cheap to import and gives the same layout for a seed everywhere.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.errors import InputError

RELATION_KINDS: tuple[str, ...] = ("left_of", "right_of", "on", "in_front_of", "behind",
                                   "next_to")
MAX_OBJECTS = 9
# Cut-outs more extreme than 1:4 would make the min-size rule impossible to keep on a grid.
ASPECT_RANGE = (0.25, 4.0)
HEIGHT_CM_RANGE = (0.5, 5000.0)
SIZE_HINT_RANGE = (0.7, 1.4)
DEFAULT_HEIGHT_CM = 30.0
# Height of the tallest box as a fraction of the canvas, by object count (Gen4Gen's 512² canvas
# layouts hold their biggest object at roughly half to three quarters of the height).
_TALLEST_RANGE = {1: (0.5, 0.8), 2: (0.45, 0.75), 3: (0.4, 0.65), 4: (0.35, 0.55)}
_TALLEST_RANGE_MANY = (0.25, 0.45)
_AREA_SAFETY = 1.02  # keep a little above the min-size rule so float noise never breaks it
_EPS = 1e-9


def min_box_area(count: int) -> float:
    """Gen4Gen's minimum box area as a fraction of a square canvas: (H/5)², (H/6)², (H/8)²."""
    side = 5 if count <= 3 else 6 if count == 4 else 8
    return 1.0 / (side * side)


@dataclass(frozen=True)
class SolverObject:
    """One object to place. `key` is returned on its box (the concept id)."""

    key: int
    height_cm: float = DEFAULT_HEIGHT_CM  # real-world height prior
    aspect: float = 1.0  # width / height of the cut-out
    size_hint: float = 1.0  # from the caption: "a small cup" < 1 < "a big dog"


@dataclass(frozen=True)
class Relation:
    """`objects[subject]` is `kind` of `objects[other]` (indices into the solver's input)."""

    subject: int
    kind: str
    other: int


@dataclass(frozen=True)
class Box:
    key: int
    x: float
    y: float
    w: float
    h: float
    z: int = 0

    @property
    def bottom(self) -> float:
        return self.y + self.h

    @property
    def centre_x(self) -> float:
        return self.x + self.w / 2


@dataclass(frozen=True)
class SolverConfig:
    max_iou: float = 0.1
    ground_band: tuple[float, float] = (0.62, 0.97)  # where ground objects' bottom edges fall
    margin: float = 0.02
    min_ratio: float = 0.4  # smallest object height / biggest (Gen4Gen: 0.4 .. 1.0)
    # IoU alone lets a small box hide inside a big one; also cap the share of a box that a
    # box drawn over it may cover.
    max_occlusion: float = 0.3
    attempts: int = 160

    def __post_init__(self) -> None:
        numbers = (self.max_iou, *self.ground_band, self.margin, self.min_ratio,
                   self.max_occlusion)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers):
            raise InputError("Layout solver settings must be finite numbers")
        if not 0 <= self.max_iou < 1:
            raise InputError(f"max IoU must be in [0, 1), got {self.max_iou}")
        low, high = self.ground_band
        if not 0.3 <= low < high <= 1:
            raise InputError(f"ground band must satisfy 0.3 <= low < high <= 1, got {low}, {high}")
        if not 0 <= self.margin <= 0.05:
            raise InputError(f"canvas margin must be in [0, 0.05], got {self.margin}")
        if not 0 <= self.max_occlusion <= 1:
            raise InputError(f"max occlusion must be in [0, 1], got {self.max_occlusion}")
        if not 0.1 <= self.min_ratio <= 1:
            raise InputError(f"min size ratio must be in [0.1, 1], got {self.min_ratio}")
        if not 1 <= self.attempts <= 10_000:
            raise InputError(f"attempts must be in [1, 10000], got {self.attempts}")


@dataclass(frozen=True)
class Solution:
    boxes: tuple[Box, ...]  # in the order of the input objects
    relations: tuple[Relation, ...] = ()  # the relations the boxes honour (normalised)
    method: str = "sampled"  # sampled | relaxed (some relations dropped) | grid


# --------------------------------------------------------------------------- checks


def _intersection(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0.0, min(a.bottom, b.bottom) - max(a.y, b.y))
    return ix * iy


def iou(a: Box, b: Box) -> float:
    inter = _intersection(a, b)
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 1.0


def occlusion(a: Box, b: Box) -> float:
    """The share of the box drawn first (lower z) that the other one covers."""
    under = a if a.z < b.z else b
    area = under.w * under.h
    return _intersection(a, b) / area if area > 0 else 1.0


def layout_problems(boxes: Sequence[Box], max_iou: float, keys: Sequence[int] | None = None,
                    max_occlusion: float | None = None) -> list[str]:
    """Every way `boxes` breaks the layout rules; empty when the layout is valid.
    `max_occlusion` (optional) also limits how much of a box another box drawn over it hides."""
    problems: list[str] = []
    if not boxes:
        return ["no boxes"]
    if keys is not None and sorted(b.key for b in boxes) != sorted(keys):
        problems.append("boxes do not hold each object exactly once")
    if len({b.key for b in boxes}) != len(boxes):
        problems.append("an object has more than one box")
    if sorted(b.z for b in boxes) != list(range(len(boxes))):
        problems.append("z is not a permutation of 0..n-1")
    smallest = min_box_area(len(boxes)) - _EPS
    for b in boxes:
        values = (b.x, b.y, b.w, b.h)
        if not all(isinstance(v, float | int) and math.isfinite(v) for v in values):
            problems.append(f"box {b.key} is not finite")
            continue
        if b.w <= 0 or b.h <= 0 or b.x < -_EPS or b.y < -_EPS:
            problems.append(f"box {b.key} is empty or starts outside the canvas")
        if b.x + b.w > 1 + _EPS or b.y + b.h > 1 + _EPS:
            problems.append(f"box {b.key} ends outside the canvas")
        if b.w * b.h < smallest:
            problems.append(f"box {b.key} is below the minimum size")
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if iou(a, b) > max_iou + _EPS:
                problems.append(f"boxes {a.key} and {b.key} overlap above IoU {max_iou}")
            elif max_occlusion is not None and occlusion(a, b) > max_occlusion + _EPS:
                problems.append(f"box {a.key} or {b.key} hides over {max_occlusion:.0%} of the "
                                "other")
    return problems


def _honoured(rel: Relation, boxes: Sequence[Box]) -> bool:
    a, b = boxes[rel.subject], boxes[rel.other]
    if rel.kind == "left_of":
        return a.centre_x < b.centre_x
    if rel.kind == "in_front_of":
        return a.bottom > b.bottom and a.z > b.z
    if rel.kind == "on":
        inside = b.x - _EPS <= a.centre_x <= b.x + b.w + _EPS
        return inside and b.y - _EPS <= a.bottom <= b.y + 0.5 * b.h and a.z > b.z
    return True  # next_to is a preference, checked by the sampler


# --------------------------------------------------------------------------- inputs


def _clamp(value: float, low: float, high: float, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return default
    if not math.isfinite(number) or number <= 0:
        return default
    return min(high, max(low, number))


@dataclass
class _Graph:
    """Relations normalised: right_of and behind flipped, contradictions and cycles dropped."""

    left: list[tuple[int, int]] = field(default_factory=list)
    front: list[tuple[int, int]] = field(default_factory=list)
    on: dict[int, int] = field(default_factory=dict)  # item -> support
    next_to: list[tuple[int, int]] = field(default_factory=list)

    def relations(self) -> list[Relation]:
        out = [Relation(a, "left_of", b) for a, b in self.left]
        out += [Relation(a, "in_front_of", b) for a, b in self.front]
        out += [Relation(a, "on", b) for a, b in self.on.items()]
        out += [Relation(a, "next_to", b) for a, b in self.next_to]
        return out


def _reaches(edges: list[tuple[int, int]], start: int, goal: int) -> bool:
    seen, stack = {start}, [start]
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        for a, b in edges:
            if a == node and b not in seen:
                seen.add(b)
                stack.append(b)
    return False


def _normalise(relations: Sequence[Relation], n: int) -> _Graph:
    graph = _Graph()
    for rel in relations:
        if not isinstance(rel, Relation) or rel.kind not in RELATION_KINDS:
            continue
        a, b = rel.subject, rel.other
        if not (isinstance(a, int) and isinstance(b, int) and 0 <= a < n and 0 <= b < n) or a == b:
            continue
        if rel.kind == "on":
            # One item per support, one level deep: a stack stays one visual unit.
            supports, items = set(graph.on.values()), set(graph.on)
            if a not in items and a not in supports and b not in items and b not in supports:
                graph.on[a] = b
            continue
        if rel.kind == "next_to":
            if (a, b) not in graph.next_to and (b, a) not in graph.next_to:
                graph.next_to.append((a, b))
            continue
        edges = graph.left if rel.kind in ("left_of", "right_of") else graph.front
        if rel.kind in ("right_of", "behind"):
            a, b = b, a
        if (a, b) not in edges and not _reaches(edges, b, a):
            edges.append((a, b))
    stacked = {frozenset(p) for p in graph.on.items()}
    graph.left = [e for e in graph.left if frozenset(e) not in stacked]
    graph.front = [e for e in graph.front if frozenset(e) not in stacked]
    graph.next_to = [e for e in graph.next_to if frozenset(e) not in stacked]
    return graph


# --------------------------------------------------------------------------- solver


def _linear_extension(nodes: list[int], edges: list[tuple[int, int]],
                      rng: random.Random) -> list[int]:
    """A random order of `nodes` in which every edge (a, b) has a before b (edges are acyclic)."""
    remaining = list(nodes)
    order: list[int] = []
    while remaining:
        free = [v for v in remaining if not any(b == v and a in remaining for a, b in edges)]
        pick = rng.choice(free) if free else remaining[0]
        order.append(pick)
        remaining.remove(pick)
    return order


class LayoutSolver:
    """Places a group of objects; `solve` always returns a valid layout (see layout_problems)."""

    def __init__(self, config: SolverConfig | None = None) -> None:
        self.config = config or SolverConfig()

    def solve(self, objects: Sequence[SolverObject], relations: Sequence[Relation] = (),
              seed: int = 0) -> Solution:
        n = len(objects)
        if not 1 <= n <= MAX_OBJECTS:
            raise InputError(f"A layout holds 1 to {MAX_OBJECTS} objects, got {n}")
        keys = [o.key for o in objects]
        if len(set(keys)) != n:
            raise InputError("Each object of a layout must have its own key")
        heights = [_clamp(o.height_cm, *HEIGHT_CM_RANGE, DEFAULT_HEIGHT_CM) for o in objects]
        aspects = [_clamp(o.aspect, *ASPECT_RANGE, 1.0) for o in objects]
        hints = [_clamp(o.size_hint, *SIZE_HINT_RANGE, 1.0) for o in objects]
        rng = random.Random(int(seed))
        graph = _normalise(relations, n)
        relaxed = _Graph(left=list(graph.left))
        attempts = self.config.attempts
        for attempt in range(attempts):
            phase = graph if attempt < attempts // 2 else (
                relaxed if attempt < 3 * attempts // 4 else _Graph())
            boxes = self._sample(keys, heights, aspects, hints, phase, rng, attempt)
            if boxes is None:
                continue
            kept = phase.relations()
            cfg = self.config
            if layout_problems(boxes, cfg.max_iou, keys, cfg.max_occlusion) or not all(
                    _honoured(r, boxes) for r in kept):
                continue
            full = len(kept) == len(graph.relations())
            return Solution(tuple(boxes), tuple(kept), "sampled" if full else "relaxed")
        return Solution(tuple(self._grid(keys, aspects, rng)), (), "grid")

    # ------------------------------------------------------------------ sampling

    def _sizes(self, heights: list[float], aspects: list[float], hints: list[float],
               rng: random.Random, attempt: int) -> list[tuple[float, float]]:
        cfg, n = self.config, len(heights)
        tallest = max(heights)
        ratios = [max(cfg.min_ratio, min(1.0, h / tallest)) * s for h, s in zip(heights, hints,
                                                                                 strict=True)]
        top = max(ratios)
        ratios = [max(cfg.min_ratio, r / top) for r in ratios]
        low, high = _TALLEST_RANGE.get(n, _TALLEST_RANGE_MANY)
        shrink = 0.94 ** (attempt // 8)  # later attempts try smaller layouts
        ref = rng.uniform(low, high) * shrink
        cap = 0.9 * (1 - 2 * cfg.margin)
        smallest = min_box_area(n) * _AREA_SAFETY
        sizes = []
        for ratio, aspect in zip(ratios, aspects, strict=True):
            h = ref * ratio * rng.uniform(0.92, 1.08)
            w = h * aspect
            fit = min(1.0, cap / w, cap / h)
            w, h = w * fit, h * fit
            if w * h < smallest:
                grow = math.sqrt(smallest / (w * h))
                w, h = w * grow, h * grow
            sizes.append((w, h))
        return sizes

    def _sample(self, keys: list[int], heights: list[float], aspects: list[float],
                hints: list[float], graph: _Graph, rng: random.Random,
                attempt: int) -> list[Box] | None:
        cfg, n = self.config, len(keys)
        sizes = self._sizes(heights, aspects, hints, rng, attempt)
        usable = 1 - 2 * cfg.margin
        items = set(graph.on)
        units = [i for i in range(n) if i not in items]
        total = sum(sizes[u][0] for u in units)
        if total > usable:
            # Prefer everything side by side: shrink all alike, never below the min-size rule.
            floor = math.sqrt(min_box_area(n) * _AREA_SAFETY / min(w * h for w, h in sizes))
            scale = max(usable * rng.uniform(0.8, 0.97) / total, floor)
            if scale < 1:
                sizes = [(w * scale, h * scale) for w, h in sizes]
        # A stack (item on support) moves as one unit along the ground.
        sink: dict[int, float] = {}
        for item, support in graph.on.items():
            (wi, hi), (ws, hs) = sizes[item], sizes[support]
            if wi > ws:
                return None
            # Sink the item into the support's top just enough to look seated, staying under
            # the IoU limit: overlap = wi * o, IoU = overlap / (area_i + area_s - overlap).
            limit = 0.8 * cfg.max_iou
            o_max = min(0.3 * hs, 0.5 * hi, limit * (wi * hi + ws * hs) / (wi * (1 + limit)))
            sink[item] = rng.uniform(0.5, 1.0) * o_max
            if hs + hi - sink[item] > usable:
                return None
        unit_of = {i: graph.on.get(i, i) for i in range(n)}
        left = {(unit_of[a], unit_of[b]) for a, b in graph.left if unit_of[a] != unit_of[b]}
        order = _linear_extension(units, sorted(left), rng)
        for a, b in graph.next_to:
            ua, ub = unit_of[a], unit_of[b]
            if ua != ub and abs(order.index(ua) - order.index(ub)) != 1:
                return None
        front = {(unit_of[a], unit_of[b]) for a, b in graph.front if unit_of[a] != unit_of[b]}
        back_to_front = _linear_extension(units, sorted((b, a) for a, b in front), rng)
        depths = sorted(rng.random() for _ in units)
        depth = {u: d for u, d in zip(back_to_front, depths, strict=True)}
        xs: dict[int, float] = {}
        if sum(sizes[u][0] for u in order) <= usable:
            xs = self._row(order, sizes, rng)
        else:
            # Too wide for one row: a back row and a front row, alternating left to right.
            rows = (order[0::2], order[1::2])
            for row, (d_low, d_high) in zip(rows, ((0.0, 0.3), (0.7, 1.0)), strict=True):
                xs.update(self._row(row, sizes, rng))
                for unit in row:
                    depth[unit] = rng.uniform(d_low, d_high)
        low, high = cfg.ground_band
        placed: dict[int, tuple[float, float, float, float]] = {}
        for unit in units:
            w, h = sizes[unit]
            stack_h = h + sum(sizes[i][1] - sink[i] for i, s in graph.on.items() if s == unit)
            bottom = low + depth[unit] * (high - low)
            bottom = min(1 - cfg.margin, max(bottom, cfg.margin + stack_h))
            placed[unit] = (xs[unit], bottom - h, w, h)
        for item, support in graph.on.items():
            sx, sy, sw, _sh = placed[support]
            w, h = sizes[item]
            x = sx + rng.random() * (sw - w)
            placed[item] = (x, sy + sink[item] - h, w, h)
        # Drawing order by depth: lower bottom edge is nearer; an item is drawn over its support.
        key_of = {u: placed[u][1] + placed[u][3] for u in units}
        depth_key = {i: key_of[unit_of[i]] + (1e-6 if i in items else 0.0) for i in range(n)}
        ranked = sorted(range(n), key=lambda i: (depth_key[i], i))
        z = {i: rank for rank, i in enumerate(ranked)}
        return [Box(keys[i], *placed[i], z=z[i]) for i in range(n)]

    def _row(self, order: list[int], sizes: list[tuple[float, float]],
             rng: random.Random) -> dict[int, float]:
        """Left edges for units side by side in `order`: random gaps when they fit (uniform
        over all ways to split the free width), even overlaps when they do not."""
        margin = self.config.margin
        widths = [sizes[u][0] for u in order]
        free = 1 - 2 * margin - sum(widths)
        if free >= 0:
            draws = [rng.expovariate(1.0) for _ in range(len(order) + 1)]
            gaps = [free * d / sum(draws) for d in draws]
        else:
            gaps = [free / max(1, len(order) - 1)] * (len(order) + 1)
            gaps[0] = gaps[-1] = 0.0
        xs: dict[int, float] = {}
        cursor = margin + gaps[0]
        for j, unit in enumerate(order):
            xs[unit] = min(max(cursor, margin), 1 - margin - widths[j])
            cursor = xs[unit] + widths[j] + gaps[j + 1]
        return xs

    # ------------------------------------------------------------------ last resort

    def _grid(self, keys: list[int], aspects: list[float],
              rng: random.Random) -> list[Box]:
        """Each object in its own cell of a 2×2 or 3×3 grid: no overlap, and with aspects in
        1:4..4:1 every box clears the min-size rule (checked in the tests for the extremes)."""
        n, margin = len(keys), self.config.margin
        side = 2 if n <= 4 else 3
        cell = (1 - 2 * margin) / side
        cells = rng.sample(range(side * side), n)
        boxes = []
        for i, c in enumerate(cells):
            row, col = divmod(c, side)
            inner = 0.96 * cell
            w, h = (inner, inner / aspects[i]) if aspects[i] >= 1 else (inner * aspects[i], inner)
            x = margin + col * cell + (cell - w) / 2
            y = margin + (row + 1) * cell - h - 0.02 * cell
            boxes.append((row, col, i, Box(keys[i], x, y, w, h)))
        ranked = sorted(boxes, key=lambda t: (t[0], t[1]))
        z = {t[2]: rank for rank, t in enumerate(ranked)}
        return [Box(b.key, b.x, b.y, b.w, b.h, z[i]) for _r, _c, i, b in boxes]
