"""Nothing the test models made reaches a real profile's work.

A project is personalized on `tiny` (its masks from the test SAM, its dataset, run and
pictures from the tiny models), then planned and worked on as `sd15`. sd15's weights are not
on this computer: the segmenter falls back to GrabCut as it would for a user, and the dataset
build runs on sd15's code path with the tiny inpainting weights given as the user's own
model files (an override), so what it records is an sd15 build. The heavy sd15 run itself is
the rehearsal's test (tests/test_sd15_rehearsal*).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from photos_project import make_photos_only_project

from engine.errors import InputError
from engine.jobs import JobFailed, JobFinished, run_inline
from engine.project import Project

SMALL = {"layouts": 2, "items": 3, "train_steps": 2, "pictures": 1}


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_photos_only_project(tmp_path_factory.mktemp("apart") / "template")


@pytest.fixture
def tiny_project(template, tmp_path, tiny_models) -> Path:
    """The photos project personalized on tiny, its masks made by the test SAM (as every
    project made before the fallback became the test profile's automatic segmenter)."""
    folder = tmp_path / "project"
    shutil.copytree(template, folder)
    tiny = {"project": str(folder), "profile": "tiny", "device": "cpu"}
    end = run_inline("segment", {**tiny, "method": "sam"})
    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    end = run_inline("personalize", {**tiny, **SMALL})
    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    return folder


def _sd15_plan(folder: Path):
    from engine.personalize import PersonalizeParams, plan_for

    plan = plan_for(PersonalizeParams(project=str(folder), profile="sd15", device="cpu",
                                      **SMALL))
    return {p.stage: p for p in plan.stages}, plan


def test_a_tiny_project_on_sd15_rebuilds_what_tiny_made_and_trains_on_none_of_it(
        tiny_project, tiny_models):
    from engine.personalize.planning import plan_text
    from engine.train.data import take_snapshot

    folder = tiny_project
    with Project.open(folder) as project:
        tiny_masks = {m.id for m in project.masks()}
        assert all(m.profile == "tiny" and m.test_model for m in project.masks())
        tiny_items = {i.id for i in project.dataset_items()}
        assert len(tiny_items) == 3
        (tiny_run,) = project.runs("custom-diffusion")

    # The plan on sd15 says what it makes again, and that it trains a new run.
    stages, plan = _sd15_plan(folder)
    assert stages["segment"].count == 4
    assert stages["segment"].note == "4 mask(s) made with the test models will be made again"
    assert stages["dataset"].count == 3 and stages["dataset"].done == 0
    assert stages["dataset"].note.startswith(
        "3 pictures made with the test models will be rebuilt")
    assert stages["train"].count == 2
    assert stages["train"].note == (f"a new run (run {tiny_run.id} was trained with the test "
                                    "models)")
    assert "3 pictures made with the test models will be rebuilt" in plan_text(plan)
    assert [(p.stage, p.rebuilds) for p in plan.stages if p.rebuilds] == [
        ("segment", 4), ("dataset", 3), ("train", 1)]
    # On tiny itself nothing is redone: the same work is its own.
    from engine.personalize import PersonalizeParams, plan_for

    same = plan_for(PersonalizeParams(project=str(folder), profile="tiny", device="cpu",
                                      **SMALL))
    assert [p.count for p in same.stages if p.stage in ("segment", "dataset", "train")] == \
        [0, 0, 0]

    # Training data on sd15: every item tiny built is left out, so there is none yet.
    with Project.open(folder) as project, pytest.raises(InputError, match="test models"):
        take_snapshot(project, test_pictures=False)
    sd15 = {"project": str(folder), "profile": "sd15", "device": "cpu"}
    end = run_inline("train", {**sd15, "overrides": {"base": str(tiny_models["base"])},
                               "config": {"steps": 1, "resolution": 64}})
    assert isinstance(end, JobFailed) and "built with the test models" in end.reason

    # The dataset on sd15 refuses the test SAM's cut-outs until the photos are segmented
    # again, and leaves the project as it was.
    build = {**sd15, "overrides": {"inpaint": str(tiny_models["inpaint"])}, "count": 3,
             "steps": 2, "resolution": 64, "seed": 1}
    end = run_inline("build-dataset", build)
    assert isinstance(end, JobFailed) and "segment again on profile 'sd15'" in end.reason
    with Project.open(folder) as project:
        assert sorted(i.build_index for i in project.dataset_items()) == [0, 1, 2]

    # Segment on sd15 (no SAM weights: the labelled fallback) remakes the test masks only.
    end = run_inline("segment", sd15)
    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    assert len(end.result.masks) == 4 and end.result.fallback
    end = run_inline("build-dataset", build)
    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    assert end.result.built == 3

    with Project.open(folder) as project:
        items = project.dataset_items()
        rebuilt = [i for i in items if i.build_index is not None]
        assert sorted(i.build_index for i in rebuilt) == [0, 1, 2]
        assert {i.id for i in rebuilt}.isdisjoint(tiny_items)
        assert all(i.provenance["profile"] == "sd15" for i in rebuilt)
        # Tiny's items stay (the user may look at them), outside the build.
        assert {i.id for i in items if i.build_index is None} == tiny_items
        used_masks = {p["mask_id"] for i in rebuilt for p in i.provenance["placements"]}
        assert used_masks and used_masks.isdisjoint(tiny_masks)
        # What an sd15 run trains on: sd15's kept items only, though tiny's are kept too.
        kept = [i for i in rebuilt if i.review_state in ("auto-kept", "accepted")]
        assert kept and any(i.review_state == "auto-kept" for i in items
                            if i.id in tiny_items)
        snapshot = take_snapshot(project, test_pictures=False)
        assert {s.item_id for s in snapshot.items} == {int(i.id or 0) for i in kept}

    stages, _ = _sd15_plan(folder)
    assert stages["segment"].count == 0 and "test models" not in stages["segment"].note
    assert stages["dataset"].count == 0 and "test models" not in stages["dataset"].note


def test_the_gallery_and_report_keep_test_model_pictures_apart(tmp_path, tiny_models):
    from scoring_project import add_picture, make_scoring_project, picture

    from engine.project import GalleryQuery
    from engine.report.data import gather

    folder = make_scoring_project(tmp_path / "project")  # four pictures made on tiny
    with Project.open(folder) as project:
        ids = {c.token: c.id for c in project.concepts()}
        real = add_picture(project, "a photo of <rocket> rocket",
                           picture(project, [(ids["<rocket>"], (0.2, 0.1, 0.5, 0.8))], 9),
                           seed=9, profile="sd15")
        everything = project.gallery(GalleryQuery())
        apart = project.gallery(GalleryQuery(exclude_profiles=("tiny",)))
        assert len(everything) == 5 and [p.id for p in apart] == [real.id]
        data = gather(project, None, 3, ["tiny"])
    # The window's gallery badges every tiny picture "test models", scored or not.
    from desktop_app.state.gallery_model import made_by_test_models

    assert [made_by_test_models(p) for p in everything] == [p.id != real.id for p in everything]
    # The project's figures count the real picture only; tiny's keep their own section.
    rows = {r.concept.token: r.pictures for r in data.concepts}
    assert rows == {"<mochi>": 0, "<cup>": 0, "<rocket>": 1}
    assert data.test_pictures
    with pytest.raises(InputError, match="exclude_profiles"):
        GalleryQuery(exclude_profiles="tiny")  # type: ignore[arg-type]
