"""What layout guidance does, measured: the same recipe and seeds with and without it.

For each seed the recipe is generated twice, guided (its layout's strength) and unguided
(strength 0, the same boxes only measured), with an AttentionRecord attached. Per concept
the report gives the share of the concept tokens' cross-attention that falls inside its box,
averaged over the guided window (the first `guided_fraction` of UNet calls) and over all
calls, in both runs; and the seconds each took. Given a `scorer` (per-concept CP-CLIP from
the score stage, when real weights are present) it also scores both pictures per concept,
so the figure that matters to the user comes out of the same harness (with the tiny test
models the scores mean nothing; the wiring is tested with them).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from engine.errors import InputError

if TYPE_CHECKING:
    from PIL import Image

    from engine.generate.layout_guidance import AttentionRecord
    from engine.generate.recipe import Recipe
    from engine.generate.sampler import GenerationModel

# (image, prompt) -> {token: score}: e.g. the score stage's
# `picture_scorer(ctx, params).concept_cp_clip` (per-concept CP-CLIP).
ConceptScorer = Callable[["Image.Image", str], dict[str, float]]


@dataclass
class GuidanceReport:
    seeds: list[int]
    guided_fraction: float
    # token -> {"guided window": {"guided": share, "unguided": share}, "all calls": {...}}
    inside: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # token -> mode -> mean
    seconds: dict[str, list[float]] = field(default_factory=dict)  # mode -> per picture

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows (token, window, guided, unguided) for a table."""
        return [{"token": token, "window": window, **values}
                for token, windows in self.inside.items() for window, values in windows.items()]


def _window_mean(record: AttentionRecord, token: str, calls: int | None) -> float:
    values = [v for call in record.calls[:calls]
              for v in call["tokens"].get(token, {}).get("inside", [])]
    return statistics.fmean(values) if values else math.nan


def compare_layout_guidance(model: GenerationModel, recipe: Recipe, seeds: Sequence[int],
                            scorer: ConceptScorer | None = None) -> GuidanceReport:
    """Generate `recipe` (which must have a layout) guided and unguided for each seed."""
    from engine.generate.layout_guidance import AttentionRecord

    layout = recipe.layout
    if layout is None or not layout.boxes:
        raise InputError("Measuring layout guidance needs a recipe with a layout")
    report = GuidanceReport(list(seeds), layout.guided_fraction)
    tokens = [b.token for b in layout.boxes]
    shares: dict[tuple[str, str, str], list[float]] = {}
    scores: dict[tuple[str, str], list[float]] = {}
    modes = {"guided": layout, "unguided": replace(layout, strength=0.0)}
    for seed in seeds:
        for mode, spec in modes.items():
            record = AttentionRecord()
            start = time.perf_counter()
            image = model.generate(replace(recipe, seed=seed, layout=spec), record=record)
            report.seconds.setdefault(mode, []).append(time.perf_counter() - start)
            guided_calls = math.ceil(layout.guided_fraction * len(record.calls) - 1e-9)
            for token in tokens:
                for name, calls in (("guided window", guided_calls), ("all calls", None)):
                    shares.setdefault((token, name, mode), []).append(
                        _window_mean(record, token, calls))
            if scorer is not None:
                for token, value in scorer(image, recipe.prompt).items():
                    scores.setdefault((token, mode), []).append(value)
    for (token, window, mode), values in shares.items():
        report.inside.setdefault(token, {}).setdefault(window, {})[mode] = \
            statistics.fmean(values)
    for (token, mode), values in scores.items():
        report.scores.setdefault(token, {})[mode] = statistics.fmean(values)
    return report
