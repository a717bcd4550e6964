"""The score job with full-size CLIP ViT-B/32 and OWL-ViT B/32 architectures (random
weights), through the real loaders and the sd15 profile's code path: shapes, dtypes and
memory that the tiny models hide. Run under `flock /tmp/mycanvas-heavy.lock`."""

from __future__ import annotations

import pytest

from engine.jobs import JobFinished, run_inline
from engine.project import Project
from engine.score import SCORE, ScoreParams

from scoring_fullsize import build_fullsize_scoring_models  # isort: skip
from scoring_project import make_scoring_project  # isort: skip


@pytest.mark.slow
def test_scoring_with_full_size_architectures(tmp_path_factory, tmp_path):
    models = build_fullsize_scoring_models(tmp_path_factory.getbasetemp() / "fullsize-score")
    project = make_scoring_project(tmp_path / "project")
    params = ScoreParams(project=str(project), profile="sd15", device="cpu",
                         overrides={k: str(v) for k, v in models.items()}, batch_size=4)
    end = run_inline(SCORE, params)
    assert isinstance(end, JobFinished), end
    result = end.result
    assert result.scored == 4 and not result.failures
    assert not result.test_model  # the sd15 code path, with the user's own folders
    assert str(models["clip"]) in result.model and str(models["detector"]) in result.model
    with Project.open(project) as proj:
        pictures = proj.gallery()
    for picture in pictures:
        assert -1.0 <= picture.ti_clip <= 1.0
        for concept in picture.concepts:
            assert -1.0 <= concept.cp_clip <= 1.0
            if concept.box is not None:
                x, y, w, h = concept.box
                assert min(x, y) >= 0 and w > 0 and h > 0 and x + w <= 1 + 1e-6
            assert concept.details["query"].startswith("a photo of ")
