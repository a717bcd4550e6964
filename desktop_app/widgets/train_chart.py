"""What the Train page draws while a run trains: the loss (raw and smoothed) and the learning
rate on a QtCharts chart, read from the run's metrics.jsonl as the worker appends to it; and
the time left, from the run's own recorded step times, so it is right from the first moment
of a resume (before the job has timed a single step of its own).

The metrics file is followed by `MetricsTail`: it reads only the bytes added since the last
look (a few hundred bytes per step) and keeps a torn last line for the next look.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from PySide6.QtCharts import QChart, QChartView, QLineSeries, QValueAxis
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPen

SMOOTHING = 0.9  # TensorBoard's default weight of the running average
RECENT_STEPS = 50  # the step times the ETA is taken from


class MetricsTail:
    """The records appended to a metrics.jsonl since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self._partial = b""

    def read_new(self) -> list[dict[str, Any]]:
        try:
            size = self.path.stat().st_size
        except OSError:
            return []
        if size < self.offset:  # cut back (a resume trims to its checkpoint): start again
            self.offset, self._partial = 0, b""
        if size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(size - self.offset)
        self.offset = size
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # "" after a complete line; a torn one waits
        out = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out


def step_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-step lines (loss, lr, seconds), not the sample lines."""
    return [r for r in records if "loss" in r and "step" in r]


def history_eta(records: list[dict[str, Any]], step: int, total: int) -> float | None:
    """Seconds left for steps step..total at the median time of the last recorded steps
    (None with no step recorded yet)."""
    seconds = [float(r["seconds"]) for r in step_records(records)[-RECENT_STEPS:]
               if isinstance(r.get("seconds"), (int, float))]
    if not seconds or total <= step:
        return None if not seconds else 0.0
    return (total - step) * statistics.median(seconds)


class Smoother:
    """TensorBoard's debiased exponential moving average, one value at a time."""

    def __init__(self, weight: float = SMOOTHING) -> None:
        self.weight = weight
        self.last = 0.0
        self.count = 0

    def add(self, value: float) -> float:
        self.count += 1
        self.last = self.last * self.weight + (1 - self.weight) * value
        return self.last / (1 - self.weight ** self.count)


class LossChart(QChartView):
    """Loss per step (raw, faint; smoothed, bold) on the left axis, the learning rate on the
    right one."""

    def __init__(self) -> None:
        chart = QChart()
        super().__init__(chart)
        self.setObjectName("lossChart")
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(220)
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        chart.setMargins(chart.margins() * 0)
        self.raw = QLineSeries(name="loss")
        self.raw.setPen(QPen(QColor(30, 144, 255, 90), 1))
        self.smooth = QLineSeries(name="loss, smoothed")
        self.smooth.setPen(QPen(QColor(20, 90, 200), 2.2))
        self.lr = QLineSeries(name="learning rate")
        self.lr.setPen(QPen(QColor(230, 126, 34), 1.5, Qt.PenStyle.DashLine))
        self.x_axis = QValueAxis()
        self.x_axis.setTitleText("step")
        self.x_axis.setLabelFormat("%d")
        self.loss_axis = QValueAxis()
        self.loss_axis.setTitleText("loss")
        self.lr_axis = QValueAxis()
        self.lr_axis.setTitleText("learning rate")
        self.lr_axis.setLabelFormat("%.1e")
        for series in (self.raw, self.smooth, self.lr):
            chart.addSeries(series)
        chart.addAxis(self.x_axis, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(self.loss_axis, Qt.AlignmentFlag.AlignLeft)
        chart.addAxis(self.lr_axis, Qt.AlignmentFlag.AlignRight)
        for series, axis in ((self.raw, self.loss_axis), (self.smooth, self.loss_axis),
                             (self.lr, self.lr_axis)):
            series.attachAxis(self.x_axis)
            series.attachAxis(axis)
        self.clear()

    def clear(self) -> None:
        for series in (self.raw, self.smooth, self.lr):
            series.clear()
        self._smoother = Smoother()
        self._bounds = [math.inf, -math.inf, math.inf, -math.inf, 0.0, 0.0]  # loss, lr, steps
        self.last_step = 0
        self.x_axis.setRange(0, 1)
        self.loss_axis.setRange(0, 1)
        self.lr_axis.setRange(0, 1)
        self.chart().setTitle("")

    def point_count(self) -> int:
        return self.raw.count()

    def add_records(self, records: list[dict[str, Any]]) -> int:
        """Add the step lines among `records` (in order; a step at or before the last one
        shown is skipped); returns how many points were added."""
        raw, smooth, lr = [], [], []
        lo, hi, lr_lo, lr_hi, first, _last = self._bounds
        for record in step_records(records):
            step, loss = int(record["step"]), record.get("loss")
            if step <= self.last_step or not isinstance(loss, (int, float)) or \
                    not math.isfinite(loss):
                continue
            if not self.raw.count() and not raw:
                first = step
            self.last_step = step
            raw.append(QPointF(step, loss))
            smooth.append(QPointF(step, self._smoother.add(loss)))
            lo, hi = min(lo, loss), max(hi, loss)
            rate = record.get("lr")
            if isinstance(rate, (int, float)) and math.isfinite(rate):
                lr.append(QPointF(step, rate))
                lr_lo, lr_hi = min(lr_lo, rate), max(lr_hi, rate)
        if not raw:
            return 0
        # One append per series and batch: a repaint per batch, not per point.
        self.raw.append(raw)
        self.smooth.append(smooth)
        if lr:
            self.lr.append(lr)
        self._bounds = [lo, hi, lr_lo, lr_hi, first, float(self.last_step)]
        pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 0.1
        self.loss_axis.setRange(lo - pad, hi + pad)
        if math.isfinite(lr_lo):
            lr_pad = (lr_hi - lr_lo) * 0.1 or abs(lr_hi) * 0.1 or 1e-6
            self.lr_axis.setRange(max(0.0, lr_lo - lr_pad), lr_hi + lr_pad)
        self.x_axis.setRange(first, max(first + 1, self.last_step))
        return len(raw)
