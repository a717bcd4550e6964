"""Model loading: profiles, safe weight loaders, tiny deterministic models.

Importing this package is cheap on purpose: torch, diffusers, transformers and friends are
imported by the submodules (engine.models.loaders, engine.models.tiny, ...) only.
"""
