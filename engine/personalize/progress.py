"""One progress bar across the chain's stages, in proportion to the time they are planned
to take (the plan's seconds, which this machine's past runs refine: timings.py).

Each stage that runs gets a span of the bar as wide as its share of the plan's seconds. In
its span the bar stays put while the stage loads (its planned load share), then moves
through the parts its job reports, each part with its own progress total and as wide as its
planned seconds: the train stage encodes the dataset (one total) and then trains (another);
a generate call makes its pictures, then scores them. A new total, once the part before it
has reported work, starts the next part.

The ETA follows the rate observed: what is left of the current stage at the stage's own
pace so far, the stages after it at the whole chain's (both damped early on towards the
plan, so one slow model load does not triple it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.jobs import JobContext, StageContext

SCALE = 1000  # the bar's total: per mille of the estimated time
# How many planned seconds the observed pace must outweigh before the ETA trusts it: a share
# of the chain's (or the stage's) planned seconds, plus one second.
DAMPING = 0.05


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
    step: int = 0
    complete: bool = False
    working: bool = False  # a unit of work was reported: the load is over


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
        self._stage_began: dict[str, float] = {}
        self.first_unit: dict[str, float] = {}  # stage -> when it first reported work done

    @property
    def stages(self) -> int:
        return len(self._spans)

    def context(self, stage: str, phases: Sequence[float] = (1.0,),
                part: tuple[float, float] = (0.0, 1.0), load: float = 0.0) -> StageContext:
        """The context `stage`'s job function runs in; `part`: which share of the stage's
        span it moves through (a stage made of several job calls); `phases`: the planned
        seconds (or shares) of the parts it reports with totals of their own; `load`: the
        share of its span before its first unit of work."""
        now = self._clock()
        self._stage_began.setdefault(stage, now)
        whole_span = self._spans[stage]
        span = _Span(whole_span.start + whole_span.weight * part[0],
                     whole_span.weight * (part[1] - part[0]), whole_span.index)
        state = _Phases(phases)
        label = _label(stage)
        load = min(max(load, 0.0), 1.0)

        def on_progress(step: int, total: int, message: str) -> None:
            if total != state.total:
                if state.total is not None and (state.complete or state.step > 0) and \
                        state.current + 1 < len(state.weights):
                    state.current += 1
                state.total = total
            state.step = step
            state.complete = total > 0 and step >= total
            if step > 0 and not state.working:
                state.working = True
                self.first_unit.setdefault(stage, self._clock())
            fraction = min(1.0, step / total) if total > 0 else 0.0
            weights = state.weights
            whole = sum(weights) or 1.0
            phased = (sum(weights[:state.current]) + fraction * weights[state.current]) / whole
            inner = load + (1.0 - load) * phased if state.working else 0.0
            self._report(stage, span.start + span.weight * inner,
                         f"[{span.index}/{self.stages}] {label}: {message}".rstrip(": "))

        return StageContext(self._ctx, stage, on_progress, label)

    def begin(self, eta: float, message: str) -> None:
        self._ctx.progress_with_eta(0, SCALE, eta, message)

    def done(self, stage: str, message: str) -> None:
        """`stage` finished (or had nothing to do): the bar moves to its end."""
        span = self._spans.get(stage)
        if span is None:
            return
        label = _label(stage)
        self._report(stage, span.start + span.weight,
                     f"[{span.index}/{self.stages}] {label}: {message}")

    @property
    def fraction(self) -> float:
        return self._done_estimate / self.total if self.total > 0 else 1.0

    def _report(self, stage: str, done: float, message: str) -> None:
        self._done_estimate = max(self._done_estimate, done)
        self._ctx.progress_with_eta(round(self.fraction * SCALE), SCALE, self.eta(stage),
                                    message)

    def eta(self, stage: str | None = None) -> float:
        """Seconds left: the rest of `stage` at its own pace so far, the stages after it at
        the chain's; each pace damped towards the one above it (the chain's towards the
        plan) while little has been done."""
        now = self._clock()
        done = self._done_estimate
        damping = DAMPING * self.total + 1.0
        chain_pace = _bounded((now - self._began + damping) / (done + damping))
        span = self._spans.get(stage or "")
        if span is None or stage not in self._stage_began:
            return max(0.0, self.total - done) * chain_pace
        end = span.start + span.weight
        stage_done = min(max(0.0, done - span.start), span.weight)
        stage_damping = DAMPING * span.weight + 1.0
        stage_pace = _bounded((now - self._stage_began[stage] + stage_damping * chain_pace)
                              / (stage_done + stage_damping))
        return max(0.0, end - done) * stage_pace + max(0.0, self.total - end) * chain_pace


def _bounded(pace: float) -> float:
    return min(5.0, max(0.2, pace))
