"""Charts as inline SVG, written here: a line chart (training loss), histograms (score
distributions) and grouped bars (guided vs unguided).

Why our own SVG and not a plotting library: the report must open in a browser with no
network, so a JavaScript charting library would have to be inlined (hundreds of kB per
report), and matplotlib (not installed here) would add a ~40 MB dependency and a second or
more of import for three simple chart shapes. Inline SVG needs nothing, stays sharp at any
zoom, keeps its text selectable and searchable, is a few kB, is deterministic (the same data
gives the same bytes), and a test can read the plotted values back from the markup.

Every chart is an <svg class="chart" data-kind="..."> with a <title>, axes with round ticks,
and a legend when it shows more than one series. Values are escaped; nothing else enters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#3b6ea5", "#d1793b", "#4f9a5b", "#a34f8f", "#8a7a3a", "#4aa3a8", "#c44e52")
WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 30, 42
LEGEND_ROW = 18


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]


def nice_ticks(lo: float, hi: float, count: int = 5, whole: bool = False) -> list[float]:
    """About `count` round tick values covering [lo, hi] (1, 2 or 5 times a power of ten;
    with `whole`, steps of at least 1, for counts)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if whole:
        step = max(1.0, step)
    first = math.floor(lo / step) * step
    ticks, value = [], first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 10))
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.4g}"


class _Frame:
    """Maps data to the plot area and draws the axes; a legend row takes room at the top."""

    def __init__(self, x_ticks: list[float], y_ticks: list[float], legend: bool = False) -> None:
        self.x0, self.x1 = x_ticks[0], x_ticks[-1]
        self.y0, self.y1 = y_ticks[0], y_ticks[-1]
        self.x_ticks, self.y_ticks = x_ticks, y_ticks
        self.top = TOP + (LEGEND_ROW if legend else 0)

    def x(self, value: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return LEFT + (value - self.x0) / span * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return HEIGHT - BOTTOM - (value - self.y0) / span * (HEIGHT - self.top - BOTTOM)

    def axes(self, x_label: str, y_label: str, x_tick_labels: bool = True) -> list[str]:
        out = [f'<line class="axis" x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
               f'y2="{HEIGHT - BOTTOM}"/>',
               f'<line class="axis" x1="{LEFT}" y1="{self.top}" x2="{LEFT}" '
               f'y2="{HEIGHT - BOTTOM}"/>']
        for t in self.y_ticks:
            y = self.y(t)
            out.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" '
                       f'y2="{y:.1f}"/><text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" '
                       f'text-anchor="end">{_fmt(t)}</text>')
        if x_tick_labels:
            for t in self.x_ticks:
                x = self.x(t)
                out.append(f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                           f'text-anchor="middle">{_fmt(t)}</text>')
        out.append(f'<text class="label" x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" '
                   f'y="{HEIGHT - 6}" text-anchor="middle">{escape(x_label)}</text>')
        middle = (self.top + HEIGHT - BOTTOM) / 2
        out.append(f'<text class="label" transform="translate(14 {middle:.0f}) rotate(-90)" '
                   f'text-anchor="middle">{escape(y_label)}</text>')
        return out


def _svg(kind: str, title: str, body: list[str], legend: Sequence[str] = ()) -> str:
    parts = [f'<svg class="chart" data-kind="{escape(kind)}" role="img" '
             f'aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
             f'height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>",
             f'<text class="heading" x="{LEFT}" y="18">{escape(title)}</text>', *body]
    if len(legend) > 1:  # one row under the title, above the plot
        x = float(LEFT)
        for i, name in enumerate(legend):
            parts.append(f'<rect x="{x:.0f}" y="{TOP - 4}" width="10" height="10" '
                         f'fill="{PALETTE[i % len(PALETTE)]}"/><text class="legend" '
                         f'x="{x + 14:.0f}" y="{TOP + 5}">{escape(name)}</text>')
            x += 30 + 6.5 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def empty_chart(kind: str, title: str, message: str) -> str:
    body = [f'<text class="empty" x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" '
            f'text-anchor="middle">{escape(message)}</text>']
    return _svg(kind, title, body)


def line_chart(kind: str, title: str, series: Sequence[Series], x_label: str,
               y_label: str) -> str:
    """One polyline per series; each point also carries its value in a data attribute."""
    points = [p for s in series for p in s.points if all(map(math.isfinite, p))]
    if not points:
        return empty_chart(kind, title, "no data")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    frame = _Frame(nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys)), len(series) > 1)
    body = frame.axes(x_label, y_label)
    for i, s in enumerate(series):
        good = [p for p in s.points if all(map(math.isfinite, p))]
        if not good:
            continue
        path = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in good)
        values = " ".join(f"{x:g}:{y:.6g}" for x, y in good)
        body.append(f'<polyline class="series" fill="none" stroke-width="1.6" '
                    f'stroke="{PALETTE[i % len(PALETTE)]}" points="{path}" '
                    f'data-series="{escape(s.name)}" data-values="{values}"/>')
    return _svg(kind, title, body, [s.name for s in series])


def histogram(kind: str, title: str, groups: dict[str, Sequence[float]], x_label: str,
              bins: int = 20) -> str:
    """Counts of each group's values in equal bins over their common range, drawn as
    overlaid translucent bars (one colour per group)."""
    values = [v for vs in groups.values() for v in vs if math.isfinite(v)]
    if not values:
        return empty_chart(kind, title, "no scores yet")
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.05, hi + 0.05
    width = (hi - lo) / bins
    counts = {name: [0] * bins for name in groups}
    for name, vs in groups.items():
        for v in vs:
            if math.isfinite(v):
                counts[name][min(bins - 1, int((v - lo) / width))] += 1
    top = max(max(c) for c in counts.values())
    frame = _Frame(nice_ticks(lo, hi), nice_ticks(0, max(1, top), whole=True),
                   len(groups) > 1)
    body = frame.axes(x_label, "pictures")
    for i, (name, cs) in enumerate(counts.items()):
        colour = PALETTE[i % len(PALETTE)]
        for b, count in enumerate(cs):
            if not count:
                continue
            left, right = lo + b * width, lo + (b + 1) * width
            x, y = frame.x(left), frame.y(count)
            body.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" '
                        f'width="{max(1.0, frame.x(right) - x - 1):.1f}" '
                        f'height="{frame.y(0) - y:.1f}" fill="{colour}" fill-opacity="0.6" '
                        f'data-series="{escape(name)}" data-count="{count}">'
                        f"<title>{escape(name)}: {count} in {_fmt(left)}–{_fmt(right)}</title>"
                        "</rect>")
    return _svg(kind, title, body, list(groups))


def bar_chart(kind: str, title: str, categories: Sequence[str],
              groups: dict[str, Sequence[float | None]], y_label: str) -> str:
    """Grouped bars: for each category, one bar per group (None: no bar)."""
    values = [v for vs in groups.values() for v in vs if v is not None and math.isfinite(v)]
    if not values:
        return empty_chart(kind, title, "no data")
    frame = _Frame([0.0, float(len(categories))],
                   nice_ticks(min(0.0, min(values)), max(0.0, max(values))), len(groups) > 1)
    body = frame.axes("", y_label, x_tick_labels=False)
    slot = (frame.x(1) - frame.x(0)) * 0.8 / max(1, len(groups))
    for c, category in enumerate(categories):
        centre = frame.x(c + 0.5)
        body.append(f'<text class="tick" x="{centre:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                    f'text-anchor="middle">{escape(category)}</text>')
        for g, (name, vs) in enumerate(groups.items()):
            value = vs[c] if c < len(vs) else None
            if value is None or not math.isfinite(value):
                continue
            x = centre - slot * len(groups) / 2 + g * slot
            y0, y1 = sorted((frame.y(0), frame.y(value)))
            body.append(f'<rect class="bar" x="{x:.1f}" y="{y0:.1f}" width="{slot - 2:.1f}" '
                        f'height="{max(0.5, y1 - y0):.1f}" '
                        f'fill="{PALETTE[g % len(PALETTE)]}" data-series="{escape(name)}" '
                        f'data-category="{escape(category)}" data-value="{value:.6g}">'
                        f"<title>{escape(name)}, {escape(category)}: {_fmt(value)}</title></rect>")
    return _svg(kind, title, body, list(groups))
