"""A concept renamed (name and token) or deleted with what was made from it; `mycanvas rate`,
`mycanvas trash` and `mycanvas concept`. The Concepts and Gallery pages call the same project
functions (tests/desktop/test_desktop_marks_and_concepts.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.cli import main
from engine.errors import InputError
from engine.project import DatasetItem, Project, Run
from engine.project.concept_removal import ConceptBusyError

from scoring_project import make_scoring_project  # isort: skip


@pytest.fixture
def project_folder(tmp_path: Path) -> Path:
    folder = make_scoring_project(tmp_path / "p")
    with Project.open(folder) as project:
        ids = {c.token: c.id for c in project.concepts()}
        masks = {cid: next(iter(project.current_masks(cid).values()))
                 for cid in ids.values()}
        # A dataset item of <mochi> and <cup>, one of <cup> alone.
        both = project.put_bytes(b"both-item", "png")
        alone = project.put_bytes(b"cup-item", "png")
        project.add_dataset_item(DatasetItem(
            image_file=both, caption="a cat and a mug", token_caption="<mochi> cat, <cup> mug",
            masks={ids["<mochi>"]: masks[ids["<mochi>"]].file,
                   ids["<cup>"]: masks[ids["<cup>"]].file}))
        project.add_dataset_item(DatasetItem(
            image_file=alone, caption="a mug", token_caption="<cup> mug",
            masks={ids["<cup>"]: masks[ids["<cup>"]].file}))
        run = project.add_run(Run(kind="custom-diffusion", status="finished"))
        (folder / "runs" / str(run.id)).mkdir(parents=True)
        (folder / "runs" / str(run.id) / "dataset.json").write_text(json.dumps(
            {"concepts": [{"id": ids["<mochi>"], "token": "<mochi>", "name": "Mochi"}]}))
    return folder


def _ids(folder: Path) -> dict[str, int]:
    with Project.open(folder) as project:
        return {c.token: c.id for c in project.concepts()}


def test_footprint_counts_what_goes_and_what_stays(project_folder):
    with Project.open(project_folder) as project:
        mochi = _ids(project_folder)["<mochi>"]
        foot = project.concept_footprint(mochi)
        assert (foot.photos, foot.masks, foot.dataset_items, foot.layouts) == (2, 4, 1, 3)
        assert foot.runs == 1 and foot.pictures == 2
        text = foot.describe()
        assert "2 photos, 4 masks, 1 dataset item, 3 layouts" in text
        assert "1 run trained on it keeps its weights and its own record of <mochi>" in text
        assert "2 generated pictures stay" in text


def test_delete_removes_the_concept_with_what_was_built_from_it(project_folder):
    with Project.open(project_folder) as project:
        ids = _ids(project_folder)
        mochi, cup = ids["<mochi>"], ids["<cup>"]
        photo_files = [project.abspath(p.file) for p in project.photos(mochi)]
        cup_mask = project.abspath(next(iter(project.current_masks(cup).values())).file)
        pictures = len(project.generations())
        project.remove_concept(mochi)
        assert [c.token for c in project.concepts()] == ["<cup>", "<rocket>"]
        assert project.photos(mochi) == [] and project.masks(concept_id=mochi) == []
        assert [i.token_caption for i in project.dataset_items()] == ["<cup> mug"]
        assert project.layouts() == []  # every layout placed Mochi
        assert not any(p.exists() for p in photo_files)  # files only Mochi's rows named
        assert cup_mask.is_file()  # a file another row names stays
        assert len(project.generations()) == pictures and len(project.runs()) == 2


def test_a_failed_delete_leaves_the_project_as_it_was(project_folder, monkeypatch):
    with Project.open(project_folder) as project:
        mochi = _ids(project_folder)["<mochi>"]
        before = project.summary()
        files = [project.abspath(p.file) for p in project.photos(mochi)]

        monkeypatch.setattr(project, "_doomed", lambda conn, c: (_ for _ in ()).throw(
            InputError("the disk went away")))
        with pytest.raises(InputError):
            project.remove_concept(mochi)
        assert project.summary() == before and all(f.is_file() for f in files)


def test_a_running_job_that_uses_the_concept_refuses_the_change(project_folder):
    with Project.open(project_folder) as project:
        ids = _ids(project_folder)
        project.journal_started("job-1", "segment", "Find the objects: Cup",
                                {"project": str(project_folder), "concept_id": ids["<cup>"]})
        # A job on another concept is not in the way.
        assert project.concept_refusal(ids["<mochi>"]) is None
        project.journal_started("job-2", "train", "Train", {"project": str(project_folder)})
        refusal = project.concept_refusal(ids["<mochi>"], "delete")
        assert refusal and "Train" in refusal and "Mochi" in refusal
        with pytest.raises(ConceptBusyError, match="while a job runs"):
            project.remove_concept(ids["<mochi>"])
        with pytest.raises(ConceptBusyError):
            project.rename_concept(ids["<mochi>"], token="<kitty>")
        assert project.concept(ids["<mochi>"]).token == "<mochi>"
        project.rename_concept(ids["<mochi>"], "Mochi the cat")  # a new name is harmless
        project.journal_ended("job-2", "finished")
        project.remove_concept(ids["<mochi>"])
    # A job whose watcher died is no longer in the way.
    with Project.open(project_folder) as project:
        with project._tx() as conn:
            conn.execute("UPDATE job_journal SET owner_pid = ? WHERE job_id = 'job-1'",
                         (os.getpid() + 10_000_000,))
        assert project.concept_refusal(_ids(project_folder)["<cup>"]) is None


def test_token_rename_rewrites_captions_and_leaves_runs_their_token(project_folder):
    with Project.open(project_folder) as project:
        mochi = _ids(project_folder)["<mochi>"]
        renamed = project.rename_concept(mochi, "Kitty", "<kitty>")
        assert (renamed.name, renamed.token) == ("Kitty", "<kitty>")
        assert project.dataset_items()[0].token_caption == "<kitty> cat, <cup> mug"
        assert project.concept_footprint(mochi).runs == 1  # the run still names it by id
        with pytest.raises(InputError, match="already used"):
            project.rename_concept(mochi, token="<cup>")
        with pytest.raises(InputError, match="must look like"):
            project.rename_concept(mochi, token="Kitty")
        assert project.concept(mochi).token == "<kitty>"


# --------------------------------------------------------------------------- the CLI


def test_cli_rate_and_trash(project_folder, capsys):
    with Project.open(project_folder) as project:
        first, second = [g.id for g in project.generations()][:2]
    assert main(["rate", str(project_folder), "4", str(first), str(second)]) == 0
    assert "Rated 4★: 2 pictures" in capsys.readouterr().out
    assert main(["rate", str(project_folder), "0", str(second)]) == 0
    assert main(["rate", str(project_folder), "6", str(second)]) == 1
    assert "stars must be 0 to 5" in capsys.readouterr().err
    with Project.open(project_folder) as project:
        assert [project.generation(g).rating for g in (first, second)] == [4, None]
        project.trash_generations([first, second])
    assert main(["trash", str(project_folder), "list"]) == 0
    listing = capsys.readouterr().out
    assert f"#{first}" in listing and "2 picture(s) in the trash." in listing
    assert main(["trash", str(project_folder), "restore", str(first)]) == 0
    assert "Restored 1 picture" in capsys.readouterr().out
    assert main(["trash", str(project_folder), "empty"]) == 1  # not a terminal: asks --yes
    assert "--yes" in capsys.readouterr().err
    assert main(["trash", str(project_folder), "empty", "--yes"]) == 0
    assert "Deleted 1 picture for good" in capsys.readouterr().out
    with Project.open(project_folder) as project:
        assert project.trash_count() == 0 and project.generation(first).deleted_at is None
        with pytest.raises(InputError):
            project.generation(second)


def test_cli_concept_rename_show_and_delete(project_folder, capsys):
    folder = str(project_folder)
    assert main(["concept", folder, "rename", "Mochi", "--token", "<kitty>"]) == 0
    out = capsys.readouterr().out
    assert "is now Mochi <kitty>" in out and "keep <mochi>" in out
    assert main(["concept", folder, "show", "<kitty>", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["photos"] == 2
    assert main(["concept", folder, "delete", "Mochi"]) == 1  # no terminal, no --yes
    assert "confirm with --yes" in capsys.readouterr().err
    assert len(_ids(project_folder)) == 3
    assert main(["concept", folder, "delete", "Mochi", "--yes"]) == 0
    assert "Deleted Mochi <kitty>: 2 photos, 4 masks" in capsys.readouterr().out
    assert "<kitty>" not in _ids(project_folder)


def test_cli_concept_delete_asks_at_a_terminal(project_folder, capsys, monkeypatch):
    import io

    answers = iter(["n", "yes"])
    monkeypatch.setattr("sys.stdin", io.StringIO())
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda question: next(answers))
    assert main(["concept", str(project_folder), "delete", "Cup"]) == 0
    out = capsys.readouterr().out
    assert "Delete the concept Cup <cup>? This removes 1 photo" in out and "Nothing deleted" in out
    assert "<cup>" in _ids(project_folder)
    assert main(["concept", str(project_folder), "delete", "Cup"]) == 0
    assert "<cup>" not in _ids(project_folder)
