"""One-click Personalize on the tiny profile, from a project with only photos (scikit-image's
cat ×2, mug and rocket): the command runs every stage and ends with scored pictures in the
gallery; a cancel, the user's edits and a rerun; a killed worker and a rerun; refusals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from photos_project import make_photos_only_project

REPO = Path(__file__).resolve().parent.parent
TINY = {"profile": "tiny", "device": "cpu"}
STAGES = ["segment", "plan", "dataset", "train", "generate", "score"]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_photos_only_project(tmp_path_factory.mktemp("personalize") / "template")


@pytest.fixture
def project_dir(template, tmp_path, tiny_models) -> Path:
    target = tmp_path / "project"
    shutil.copytree(template, target)
    return target


def mycanvas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "desktop_app.launcher", *args],
                          capture_output=True, text=True, cwd=REPO, env=os.environ.copy(),
                          timeout=300)


def _personalize(folder: Path, sink=None, cancel=None, **params):
    from engine.jobs import JobContext, JobSpec, run_job

    spec = JobSpec("personalize", {"project": str(folder), **TINY, **params})
    return run_job(spec, JobContext(spec.job_id, sink or (lambda _e: None), cancel))


def _finished(end):
    from engine.jobs import JobFinished

    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    return end.result


def _outcomes(result) -> dict[str, str]:
    return {o.stage: o.state for o in result.stages}


def _catalogue(folder: Path) -> dict:
    """What the user sees of each kind of record, to compare before and after."""
    from engine.project import Project

    with Project.open(folder) as project:
        return {
            "masks": [(m.id, m.photo_id, m.file, m.method) for m in project.masks()],
            "layouts": [(lay.id, lay.scene, lay.caption, lay.objects_json())
                        for lay in project.layouts()],
            "items": [(i.id, i.build_index, i.review_state, i.image_file)
                      for i in project.dataset_items()],
            "runs": [(r.id, r.kind) for r in project.runs()],
        }


# --------------------------------------------------------------------------- the command


def test_the_command_runs_every_stage_and_ends_with_scored_pictures(project_dir):
    from engine.personalize import preset_settings
    from engine.project import Project

    quick = preset_settings("tiny", "cpu", "quick")
    dry = mycanvas("personalize", str(project_dir), "--profile", "tiny", "--device", "cpu",
                   "--dry-run")
    assert dry.returncode == 0, dry.stderr
    for line in ("segment   4 photos", f"plan      {quick.layouts} layouts",
                 f"dataset   {quick.items} items", f"train     {quick.train_steps} steps",
                 f"generate  {quick.pictures} pictures", "total"):
        assert line in dry.stdout, dry.stdout
    assert _catalogue(project_dir)["masks"] == []  # a dry run does nothing

    done = mycanvas("personalize", str(project_dir), "--profile", "tiny", "--device", "cpu",
                    "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [(s["stage"], s["state"]) for s in result["stages"]] == \
        [(s, "done") for s in STAGES[:5]] + [("score", "skipped")]  # scored by generation
    assert len(result["generation_ids"]) == quick.pictures == result["scored"]
    # one bar to the end, the stage named; each stage's logs labelled with it
    assert "100% · " in done.stderr and "[6/6] Scores" in done.stderr
    assert all(f"{label}: " in done.stderr for label in ("Masks", "Dataset", "Training",
                                                         "Pictures"))
    with Project.open(project_dir) as project:
        gallery = project.gallery(run_id=result["run_id"])
        assert len(gallery) == quick.pictures
        assert all(g.scored and g.test_model and g.guided for g in gallery)
        assert {g.generation.settings["layout"]["layout_id"] for g in gallery} == \
            {lay.id for lay in project.layouts()}
        assert len(project.layouts()) == quick.layouts
        assert sorted(i.build_index for i in project.dataset_items()) == list(range(quick.items))
        assert {m.photo_id for m in project.masks()} == {p.id for p in project.photos()}
        assert project.run(result["run_id"]).status == "finished"
    before = _catalogue(project_dir)

    again = mycanvas("personalize", str(project_dir), "--profile", "tiny", "--device", "cpu",
                     "--json")
    assert again.returncode == 0, again.stderr
    assert {s["state"] for s in json.loads(again.stdout)["stages"]} == {"skipped"}
    assert _catalogue(project_dir) == before


# --------------------------------------------------------------------------- cancel, edits


def test_cancel_mid_chain_then_again_keeps_the_users_work_and_redoes_nothing(project_dir):
    from engine.jobs import CancelToken, JobCancelled, JobProgress
    from engine.project import LayoutObject, Project

    token = CancelToken()

    def cancel_in_training(event):
        if isinstance(event, JobProgress) and "Training: step 10/" in event.message:
            token.cancel()

    end = _personalize(project_dir, sink=cancel_in_training, cancel=token)
    assert isinstance(end, JobCancelled)
    with Project.open(project_dir) as project:
        (run,) = project.runs()
        assert run.status == "cancelled" and not project.generations()
        items = project.dataset_items()
        layouts = project.layouts()
        photo = project.photos()[0]
        # The user's own work meanwhile: review two items, edit one layout, delete another,
        # paint a mask.
        project.set_review_state(items[0].id, "accepted")
        project.set_review_state(items[1].id, "rejected")
        edited = layouts[0]
        moved = (LayoutObject(o.concept_id, 0.05, 0.05, 0.4, 0.4, o.z) if i == 0 else o
                 for i, o in enumerate(edited.objects))
        project.update_layout(type(edited)(
            scene="on a red sofa", caption="My own caption.", objects=tuple(moved),
            source="edited", id=edited.id))
        project.delete_layout(layouts[1].id)
        painted = project.add_mask(photo.id, photo.concept_id,
                                   project.masks(photo.id)[-1].file, "painted",
                                   cutout_file=project.masks(photo.id)[-1].cutout_file)
    before = _catalogue(project_dir)

    result = _finished(_personalize(project_dir))
    outcomes = _outcomes(result)
    assert outcomes == {"segment": "skipped", "plan": "skipped", "dataset": "skipped",
                        "train": "done", "generate": "done", "score": "skipped"}
    train = next(o for o in result.stages if o.stage == "train")
    assert f"Run {run.id}:" in train.detail and "resumed at step 10" in train.detail
    plan = next(o for o in result.stages if o.stage == "plan")
    assert "1 deleted by you" in plan.detail
    assert _catalogue(project_dir) == before  # masks, layouts, items, runs: as the user left
    with Project.open(project_dir) as project:
        assert project.masks(photo.id)[-1].id == painted.id
        gallery = project.gallery(run_id=run.id)
        assert len(gallery) == result.scored == 3 and all(g.scored for g in gallery)
        # pictures from the chain's layouts still there, the edited one as edited
        used = {g.generation.settings["layout"]["layout_id"] for g in gallery}
        assert used == {layouts[0].id, layouts[2].id}
        assert project.run(run.id).status == "finished"


def test_the_book_takes_in_what_an_interrupted_plan_or_training_left():
    """A kill between a plan's first layout and its end, or between a run's start and its
    end, leaves only the notes made before; the layouts and run above them are the chain's."""
    import tempfile

    from engine.personalize.state import ChainBook
    from engine.project import Layout, LayoutObject, Project, Run

    with tempfile.TemporaryDirectory() as tmp, Project.create(Path(tmp) / "p", "B") as project:
        cat = project.add_concept("Mochi", "cat")
        mine = project.add_layout(Layout(scene="mine", objects=(
            LayoutObject(cat.id, 0.1, 0.1, 0.5, 0.5),)))
        ChainBook(planning_from=mine.id, training_from=0, training_key="k").write(project)
        planned = project.add_layout(Layout(scene="planned", objects=(
            LayoutObject(cat.id, 0.2, 0.2, 0.5, 0.5),)))
        run = project.add_run(Run(kind="custom-diffusion", status="running"))
        book = ChainBook.read(project).settle(project)
        assert book.planned_layouts == [planned.id] and book.planning_from == mine.id
        assert (book.run_id, book.run_key, book.training_from) == (run.id, "k", None)
        project.set_meta("personalize", "{not json")
        assert ChainBook.read(project) == ChainBook()


# --------------------------------------------------------------------------- a killed worker


def test_a_killed_worker_mid_chain_and_a_rerun_completes(project_dir):
    from engine.jobs import JobFailed, JobProgress
    from engine.jobs.worker import JobRunner
    from engine.project import Project

    params = {"project": str(project_dir), **TINY}
    with JobRunner() as runner:
        killed: dict[str, str | None] = {"at": None}

        def kill_in_training(event):
            if isinstance(event, JobProgress) and "Training: step 13/" in event.message \
                    and killed["at"] is None:
                killed["at"] = event.message
                os.kill(runner.worker_pid, signal.SIGKILL)

        runner.add_listener(kill_in_training)
        first = runner.submit("personalize", params).wait(300)
        assert isinstance(first, JobFailed) and "SIGKILL" in first.reason, first
        with Project.open(project_dir) as project:
            (run,) = project.runs()
            assert run.status == "running"  # nobody could record the kill
        saved = max(int(p.name.split("-")[1])
                    for p in (project_dir / "runs" / str(run.id) / "checkpoints").glob("step-*"))
        assert 6 <= saved < 30  # checkpoints every 6 of 30 steps in the quick preset
        before = _catalogue(project_dir)
        again = runner.submit("personalize", params).wait(300)
    result = _finished(again)
    assert _outcomes(result)["train"] == "done" and result.run_id == run.id
    train = next(o for o in result.stages if o.stage == "train")
    assert f"resumed at step {saved}" in train.detail  # the last checkpoint before the kill
    after = _catalogue(project_dir)
    assert after["runs"] == before["runs"]  # resumed, not a second run
    for kind in ("masks", "layouts", "items"):
        assert after[kind] == before[kind]
    with Project.open(project_dir) as project:
        assert len(project.gallery(run_id=run.id, scored=True)) == 3


# --------------------------------------------------------------------------- refusals


def test_refusals_are_one_line_and_change_nothing(tmp_path, project_dir):
    from engine.jobs import JobFailed
    from engine.project import Project

    Project.create(tmp_path / "empty", "Empty").close()
    end = _personalize(tmp_path / "empty")
    assert isinstance(end, JobFailed) and "no photos yet" in end.reason
    assert "\n" not in end.reason

    before = _catalogue(project_dir)
    end = _personalize(project_dir, profile="sd15")  # nothing of SD 1.5 is downloaded here
    assert isinstance(end, JobFailed), end
    assert "inpaint, base" in end.reason and "mycanvas models download sd15" in end.reason
    assert _catalogue(project_dir) == before
