"""One progress bar across the chain's stages, weighted by their estimated seconds.

Each stage that runs gets a span of the bar as wide as its share of the plan's estimated
time. A stage reports its own step/total; its fraction moves the bar through its span. A
stage that reports in phases (generation: pictures, then their scores), each with its own
total, names the phases' weights: a new total after the previous phase completed starts
the next phase.

The ETA: the current part's own rate (its steps so far) for what is left of it, plus the
estimates of the stages after it, scaled by how fast the chain has gone so far against its
estimates (damped early on, so one slow model load does not triple the ETA).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engine.jobs import EtaEstimator, JobContext, StageContext

SCALE = 1000  # the bar's total: per mille of the estimated time


def _label(stage: str) -> str:
    from engine.personalize.jobs import STAGES, chain_stage

    return chain_stage(stage).label if stage in STAGES else stage


@dataclass
class _Span:
    start: float  # estimated seconds before the stage
    weight: float  # its estimated seconds
    index: int  # its place among the stages that run (1-based)


@dataclass
class _Phases:
    weights: Sequence[float]
    current: int = 0
    total: int | None = None
    complete: bool = False
    eta: EtaEstimator = field(default_factory=EtaEstimator)


class ChainProgress:
    def __init__(self, ctx: JobContext, weights: dict[str, float],
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`weights`: estimated seconds of each stage that runs, in order."""
        self._ctx = ctx
        self._clock = clock
        self._began = clock()
        self._spans: dict[str, _Span] = {}
        start = 0.0
        for index, (stage, seconds) in enumerate(weights.items(), 1):
            self._spans[stage] = _Span(start, max(0.0, seconds), index)
            start += max(0.0, seconds)
        self.total = start
        self._done_estimate = 0.0

    @property
    def stages(self) -> int:
        return len(self._spans)

    def context(self, stage: str, phases: Sequence[float] = (1.0,),
                part: tuple[float, float] = (0.0, 1.0)) -> StageContext:
        """The context `stage`'s job function runs in; `part`: which share of the stage's
        span it moves through (a stage made of several job calls)."""
        whole_span = self._spans[stage]
        span = _Span(whole_span.start + whole_span.weight * part[0],
                     whole_span.weight * (part[1] - part[0]), whole_span.index)
        state = _Phases(phases)
        label = _label(stage)

        def on_progress(step: int, total: int, message: str) -> None:
            if total != state.total:
                if state.total is not None and state.complete and \
                        state.current + 1 < len(state.weights):
                    state.current += 1
                    state.eta = EtaEstimator()
                state.total = total
            state.complete = total > 0 and step >= total
            fraction = min(1.0, step / total) if total > 0 else 0.0
            weights = state.weights
            whole = sum(weights) or 1.0
            before = sum(weights[:state.current]) / whole
            inner = before + fraction * weights[state.current] / whole
            part_end = span.start + span.weight * (before + weights[state.current] / whole)
            left_in_part = state.eta.update(step, total)
            self._report(span.start + span.weight * inner, part_end, left_in_part,
                         f"[{span.index}/{self.stages}] {label}: {message}".rstrip(": "))

        return StageContext(self._ctx, stage, on_progress, label)

    def begin(self, eta: float, message: str) -> None:
        self._ctx.progress_with_eta(0, SCALE, eta, message)

    def done(self, stage: str, message: str) -> None:
        """`stage` finished (or had nothing to do): the bar moves to its end."""
        span = self._spans.get(stage)
        if span is None:
            return
        end = span.start + span.weight
        label = _label(stage)
        self._report(end, end, 0.0, f"[{span.index}/{self.stages}] {label}: {message}")

    def _report(self, done: float, part_end: float, left_in_part: float | None,
                message: str) -> None:
        self._done_estimate = max(self._done_estimate, done)
        fraction = self._done_estimate / self.total if self.total > 0 else 1.0
        self._ctx.progress_with_eta(round(fraction * SCALE), SCALE,
                                    self.eta(part_end, left_in_part), message)

    def eta(self, part_end: float, left_in_part: float | None) -> float:
        elapsed = self._clock() - self._began
        damping = 0.1 * self.total + 1.0
        ratio = min(5.0, max(0.2, (elapsed + damping) / (self._done_estimate + damping)))
        if left_in_part is None:
            left_in_part = max(0.0, part_end - self._done_estimate) * ratio
        return max(0.0, left_in_part + max(0.0, self.total - part_end) * ratio)
