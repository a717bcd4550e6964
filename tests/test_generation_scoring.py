"""Generation scores its pictures itself when the scoring models are here (issue 14), in the
same job: a second phase of its progress, under its cancel; and says in one line why not
when they are missing."""

from __future__ import annotations

import shutil

import pytest
from generate_project import PROMPT, make_generate_project

FAST = {"device": "cpu", "steps": 3}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_generate_project(tmp_path_factory.mktemp("generation-scoring") / "template")


@pytest.fixture
def project(template, tmp_path):
    folder, run_a, _run_b = template
    target = tmp_path / "project"
    shutil.copytree(folder, target)
    return target, run_a


def _generate(folder, sink=None, cancel=None, **params):
    from engine.jobs import JobContext, JobSpec, run_job

    spec = JobSpec("generate", {"project": str(folder), **FAST, **params})
    return run_job(spec, JobContext(spec.job_id, sink or (lambda _e: None), cancel))


def _ok(end):
    from engine.jobs import JobFinished

    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    return end.result


def test_pictures_are_scored_in_the_same_job_when_the_models_are_here(project):
    from engine.jobs import JobLog, JobProgress
    from engine.project import Project
    from engine.score import scoring_models_present

    folder, run_id = project
    assert scoring_models_present("tiny")
    events: list = []
    made = _ok(_generate(folder, sink=events.append, run_id=run_id, prompt=PROMPT, count=2,
                         seed=3))
    with Project.open(folder) as proj:
        pictures = [proj.gallery_image(g) for g in made.generation_ids]
    assert all(p.scored and p.test_model for p in pictures)
    assert all(c.cp_clip is not None for p in pictures for c in p.concepts)
    progress = [e for e in events if isinstance(e, JobProgress)]
    scoring = [e for e in progress if e.message.startswith("scoring: ")]
    pictures_phase = [e for e in progress if "picture" in e.message
                      and not e.message.startswith("scoring")]
    assert scoring and progress.index(scoring[0]) > progress.index(pictures_phase[-1])
    assert scoring[-1].step == scoring[-1].total == 2  # its own total: the pictures scored
    logs = [e.text for e in events if isinstance(e, JobLog)]
    assert any(t.startswith("Scored 2 picture(s)") for t in logs)
    assert all(e.job_id == made.batch for e in events)  # one job's events, the batch's id


def test_without_the_scoring_models_one_line_says_why_and_nothing_is_scored(project,
                                                                            tmp_path):
    from engine.jobs import JobLog
    from engine.project import Project
    from engine.score import scoring_models_present

    folder, run_id = project
    gone = {"clip": str(tmp_path / "no-clip-here")}
    assert not scoring_models_present("tiny", gone)
    events: list = []
    made = _ok(_generate(folder, sink=events.append, run_id=run_id, prompt=PROMPT, seed=3,
                         overrides=gone))
    skipped = [e.text for e in events if isinstance(e, JobLog) and "coring" in e.text]
    assert len(skipped) == 1 and skipped[0].startswith("Scoring skipped: the scoring models")
    with Project.open(folder) as proj:
        assert not proj.gallery_image(made.generation_ids[0]).scored


def test_a_cancel_while_scoring_keeps_the_pictures_and_the_resume_scores_them(project):
    from engine.jobs import CancelToken, JobCancelled, JobProgress
    from engine.project import Project

    folder, run_id = project
    token = CancelToken()

    def cancel_when_scoring(event):
        if isinstance(event, JobProgress) and event.message.startswith("scoring: "):
            token.cancel()

    params = {"run_id": run_id, "prompt": PROMPT, "count": 2, "seed": 5, "batch": "b1"}
    end = _generate(folder, sink=cancel_when_scoring, cancel=token, **params)
    assert isinstance(end, JobCancelled)
    with Project.open(folder) as proj:
        made = proj.generations(run_id)
        assert len(made) == 2 and not any(proj.gallery_image(g.id).scored for g in made)
    again = _ok(_generate(folder, **params))
    assert again.already == 2 and again.generation_ids == []
    with Project.open(folder) as proj:
        assert all(proj.gallery_image(g.id).scored for g in made)
