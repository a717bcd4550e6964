"""The scoring models: CLIP and OWL-ViT from the profile's "clip" and "detector" roles, kept
warm in the worker's cache; and how every score names them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.score.jobs import SCORING_ROLES

if TYPE_CHECKING:
    from engine.jobs import JobContext
    from engine.jobs.stage_setup import StageSetup
    from engine.score.detection import OwlDetector
    from engine.score.embedding import ClipEmbedder


def scoring_models_present(profile: str | None = None,
                           overrides: dict[str, str] | None = None) -> bool:
    """Whether both scoring models can be loaded without a download (a test profile's tiny
    models count: they are built on first use). The generate stage scores its pictures
    when this is true. `profile` and `overrides` default to the user's settings."""
    from engine.models.profiles import get_profile, missing_roles
    from engine.settings import load_settings

    settings = load_settings()
    prof = get_profile(profile or settings.profile or None)
    roles = dict(settings.role_overrides if overrides is None else overrides)
    return not missing_roles(prof, SCORING_ROLES, roles)


def uses_test_models(setup: StageSetup) -> bool:
    """True when a scoring model is a tiny test model (random weights)."""
    return any(setup.profile.role(role).tiny and not setup.overrides.get(role)
               for role in SCORING_ROLES)


def model_label(setup: StageSetup) -> str:
    """'sd15: clip laion/...@main; detector google/owlvit-base-patch32@main' (a folder set in
    the settings is named by its path)."""
    parts = [f"{role} {setup.overrides.get(role) or setup.profile.role(role).source}"
             for role in SCORING_ROLES]
    return f"{setup.profile.name}: " + "; ".join(parts)


@dataclass
class ScoringModels:
    embedder: ClipEmbedder
    detector: OwlDetector
    label: str
    test_model: bool


def load_scoring_models(ctx: JobContext, setup: StageSetup) -> ScoringModels:
    """Both models through the warm cache (the dataset filter's CLIP key is the same one, so
    a worker that built the dataset has CLIP loaded already)."""
    from engine.models.loaders import load_clip, load_detector
    from engine.score.detection import OwlDetector
    from engine.score.embedding import ClipEmbedder

    assert setup.device is not None
    device, dtype = setup.device.device, setup.device.dtype
    clip_path, detector_path = setup.role_path("clip"), setup.role_path("detector")
    model, preprocess, tokenizer = ctx.models.load(
        setup.model_key("clip", str(clip_path)), lambda: load_clip(clip_path, device, dtype))
    owl, processor = ctx.models.load(
        setup.model_key("detector", str(detector_path)),
        lambda: load_detector(detector_path, device, dtype))
    return ScoringModels(ClipEmbedder(model, preprocess, tokenizer, device),
                         OwlDetector(owl, processor, device), model_label(setup),
                         uses_test_models(setup))
