"""The `score` job on the tiny profile: incremental, resumable, cancellable, batched, models
loaded once, every score labelled as a test-model score; and `mycanvas score`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.jobs import (
    CancelToken,
    JobCancelled,
    JobContext,
    JobFailed,
    JobFinished,
    JobProgress,
    JobSpec,
    run_job,
)
from engine.jobs.warm_cache import WarmCache
from engine.project import Project, Run
from engine.score import SCORE, ScoreParams, scoring_models_present

from scoring_project import add_picture, make_scoring_project, picture  # isort: skip


@pytest.fixture
def project(tmp_path: Path, tiny_models) -> Path:
    return make_scoring_project(tmp_path / "project")


def _run(params: ScoreParams, models: WarmCache | None = None,
         cancel_after: int | None = None) -> tuple[object, list]:
    events: list = []
    token = CancelToken()

    def sink(event) -> None:
        events.append(event)
        if cancel_after is not None and isinstance(event, JobProgress) and \
                event.step >= cancel_after:
            token.cancel()

    spec = JobSpec.of(SCORE, params)
    ctx = JobContext(spec.job_id, sink, token, models=models or WarmCache())
    return run_job(spec, ctx), events


def _params(project: Path, **kw) -> ScoreParams:
    return ScoreParams(project=str(project), profile="tiny", device="cpu", **kw)


def test_scores_every_picture_once_and_labels_test_models(project):
    end, events = _run(_params(project))
    assert isinstance(end, JobFinished), end
    result = end.result
    assert result.scored == 4 and result.remaining == 0 and result.failures == []
    assert result.test_model and result.model.startswith("tiny:")
    assert "Test models" in result.summary()
    assert any(getattr(e, "level", "") == "warning" and "test models" in e.text.lower()
               for e in events)
    with Project.open(project) as proj:
        pictures = {p.generation.prompt: p for p in proj.gallery()}
        assert all(p.scored and p.test_model for p in pictures.values())
        both = pictures["a photo of <mochi> cat and <cup> mug on a table"]
        assert [c.token for c in both.concepts] == ["<mochi>", "<cup>"]
        assert all(c.cp_clip is not None and c.details["threshold"] == 0.1
                   for c in both.concepts)
        assert both.cp_clip == pytest.approx(sum(c.cp_clip for c in both.concepts) / 2)
        assert both.cd_text == pytest.approx(2.5 * max(0.0, both.ti_clip))
        repeated = pictures["<composition> a photo of <mochi> cat, <mochi> cat. background: "
                            "a garden"]
        assert [c.token for c in repeated.concepts] == ["<mochi>"]  # named twice, once
        empty = pictures["an empty sunlit kitchen"]
        assert empty.cp_clip is None and empty.ti_clip is not None and empty.concepts == ()
        assert result.mean_cp_clip == pytest.approx(
            sum(p.cp_clip for p in pictures.values() if p.cp_clip is not None) / 3)
    # Nothing left: a second run scores nothing and says so.
    again, _ = _run(_params(project))
    assert again.result.scored == 0 and "nothing to score" in again.result.summary()


def test_only_unscored_live_pictures_are_scored_then_rescore_redoes_all(project):
    _run(_params(project))
    with Project.open(project) as proj:
        before = {p.id: p.scored_at for p in proj.gallery()}
        mochi = proj.concept_by_name("Mochi")
        new = add_picture(proj, "<mochi> cat alone", picture(proj, [(mochi.id, (0.2, 0.2, 0.5,
                                                                                0.5))], 11))
        trashed = add_picture(proj, "<mochi> cat, trashed", picture(proj, [], 12))
        proj.trash_generations(trashed.id)
    end, _ = _run(_params(project))
    assert end.result.generation_ids == [new.id]
    with Project.open(project) as proj:
        assert {p.id: p.scored_at for p in proj.gallery() if p.id != new.id} == before
        assert not proj.gallery_image(trashed.id).scored
    end, _ = _run(_params(project, rescore=True))
    assert sorted(end.result.generation_ids) == sorted([*before, new.id])
    with Project.open(project) as proj:
        after = {p.id: p.scored_at for p in proj.gallery()}
    assert all(after[i] > before[i] for i in before)


def test_run_and_ids_limit_what_is_scored(project):
    with Project.open(project) as proj:
        first = proj.generations()[0]
        other_run = proj.add_run(Run(kind="custom-diffusion"))
    end, _ = _run(_params(project, run_id=other_run.id))
    assert end.result.scored == 0
    end, _ = _run(_params(project, generation_ids=[first.id]))
    assert end.result.generation_ids == [first.id]
    failed, _ = _run(_params(project, generation_ids=[999]))
    assert isinstance(failed, JobFailed) and "No generation with id 999" in failed.reason


def test_cancel_keeps_finished_batches_and_a_rerun_scores_the_rest(project):
    end, events = _run(_params(project, batch_size=1), cancel_after=2)
    assert isinstance(end, JobCancelled)
    with Project.open(project) as proj:
        done = [p.id for p in proj.gallery() if p.scored]
    assert 1 <= len(done) < 4
    end, _ = _run(_params(project, batch_size=1))
    assert isinstance(end, JobFinished)
    assert sorted(end.result.generation_ids + done) == [1, 2, 3, 4]
    progress = [e for e in events if isinstance(e, JobProgress)]
    assert progress[0].message == "loading the scoring models" and progress[0].total == 4


def test_a_resumed_rescore_skips_what_it_already_rescored(project):
    _run(_params(project))
    with Project.open(project) as proj:
        first = min(p.id for p in proj.gallery())
    # A rescore that began, rescored picture `first` and was cut short: its journal entry
    # resumes it with the time it began, which is that picture's new score time.
    _run(_params(project, generation_ids=[first], rescore=True))
    with Project.open(project) as proj:
        began = proj.gallery_image(first).scored_at
    end, _ = _run(_params(project, rescore=True, rescore_before=began))
    assert sorted(end.result.generation_ids) == sorted({1, 2, 3, 4} - {first})


def _values(project: Path) -> dict[tuple, float]:
    with Project.open(project) as proj:
        return {(s.generation_id, s.metric, s.concept_id): s.value for s in proj.scores()}


def test_batched_scores_equal_one_by_one_with_fewer_passes(project, monkeypatch):
    from engine.score import scorer as scorer_module

    passes: list[int] = []
    real = scorer_module.Scorer.score

    def counting(self, pictures):
        before = self.embedder.forwards + self.detector.forwards
        out = real(self, pictures)
        passes.append(self.embedder.forwards + self.detector.forwards - before)
        return out

    monkeypatch.setattr(scorer_module.Scorer, "score", counting)
    _run(_params(project, batch_size=1))
    one_by_one, single_passes = _values(project), list(passes)
    passes.clear()
    _run(_params(project, batch_size=8, rescore=True))
    batched = _values(project)
    # Per call: one detector pass, one CLIP pass for pictures and crops, one for texts (no
    # detector pass for the picture naming no concept); plus, on first use, two CLIP passes
    # per concept for its references (cut-outs, photos): 3 concepts.
    assert sum(single_passes) == 3 * 3 + 2 + 3 * 2
    assert passes == [3 + 3 * 2]
    assert batched.keys() == one_by_one.keys()
    for key, value in one_by_one.items():
        assert batched[key] == pytest.approx(value, abs=1e-4), key


def test_models_are_loaded_once_and_kept_warm(project, monkeypatch):
    from engine.models import loaders

    calls: list[str] = []
    for name in ("load_clip", "load_detector"):
        real = getattr(loaders, name)

        def counted(*a, _real=real, _name=name, **kw):
            calls.append(_name)
            return _real(*a, **kw)

        monkeypatch.setattr(loaders, name, counted)
    cache = WarmCache()
    _run(_params(project, generation_ids=[1]), models=cache)
    _run(_params(project, generation_ids=[2]), models=cache)
    assert sorted(calls) == ["load_clip", "load_detector"]
    assert {k.role for k in cache.loaded_keys()} == {"clip", "detector"}


def test_a_missing_image_is_reported_and_the_rest_scored(project):
    with Project.open(project) as proj:
        gen = proj.generations()[0]
        proj.abspath(gen.image_file).unlink()
    end, _ = _run(_params(project))
    result = end.result
    assert result.scored == 3 and result.remaining == 1
    assert f"picture {gen.id}" in result.failures[0] and "missing" in result.failures[0]


def test_scoring_models_present_for_the_tiny_profile():
    assert scoring_models_present("tiny")
    assert not scoring_models_present("tiny", {"clip": "/nonexistent/clip"})


def test_cli_score_prints_json_with_the_test_model_label(project, capsys):
    from engine.cli import main

    assert main(["-q", "score", str(project), "--profile", "tiny", "--device", "cpu",
                 "--batch-size", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scored"] == 4 and out["test_model"] is True
    assert main(["-q", "score", str(project), "--profile", "tiny", "--device", "cpu"]) == 0
    assert "nothing to score" in capsys.readouterr().out
    assert main(["-q", "score", str(project), "--profile", "tiny", "--threshold", "2"]) == 1
    assert "threshold must be at most 1" in capsys.readouterr().err
    assert main(["-q", "score", str(project), "--profile", "tiny", "--device", "cpu",
                 "--rescore"]) == 0
    with Project.open(project) as proj:
        entry = proj.journal()[0]
    assert entry.name == "score" and entry.state == "finished"
    assert entry.resume_params["rescore_before"]  # a resumed rescore starts from here


def test_pictures_outside_the_catalogue_score_as_the_job_scores_them(project):
    from PIL import Image

    from engine.jobs import inline_context
    from engine.score import picture_scorer, score_pictures

    ctx = inline_context()
    with Project.open(project) as proj:
        gen = proj.generations()[0]
        with Image.open(proj.abspath(gen.image_file)) as im:
            image = im.convert("RGB")
    with picture_scorer(ctx, _params(project, batch_size=1)) as scorer:
        alone = scorer.score(image, gen.prompt)
        by_token = scorer.concept_cp_clip(image, gen.prompt)
        assert scorer.test_model
    inside = score_pictures(ctx, _params(project, generation_ids=[gen.id], batch_size=1))
    assert inside.generation_ids == [gen.id]
    with Project.open(project) as proj:
        stored = proj.gallery_image(gen.id)
    assert alone.ti_clip == pytest.approx(stored.ti_clip, abs=1e-6)
    assert by_token == pytest.approx({c.token: c.cp_clip for c in stored.concepts}, abs=1e-6)


def test_an_out_of_memory_batch_is_scored_again_one_picture_at_a_time(project, monkeypatch):
    from engine.score import scorer as scorer_module

    real = scorer_module.Scorer.score
    sizes: list[int] = []

    def tight(self, pictures):
        sizes.append(len(pictures))
        if len(pictures) > 1:
            raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate")
        return real(self, pictures)

    monkeypatch.setattr(scorer_module.Scorer, "score", tight)
    end, events = _run(_params(project, batch_size=4))
    assert isinstance(end, JobFinished) and end.result.scored == 4
    assert sizes == [4, 1, 1, 1, 1]
    assert any("one at a time" in getattr(e, "text", "") for e in events)


def test_missing_scoring_models_fail_with_how_to_get_them(project):
    end, _ = _run(ScoreParams(project=str(project), profile="sd15", device="cpu"))
    assert isinstance(end, JobFailed)
    assert "mycanvas models download sd15" in end.reason
    with Project.open(project) as proj:
        assert proj.scores() == []  # nothing written
