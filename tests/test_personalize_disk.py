"""Personalize's disk estimate for a new training run covers what a real run of the tiny
profile puts on disk at its largest: the checkpoints kept plus the one being written, and the
export (a run was once estimated below the size of a single checkpoint)."""

from __future__ import annotations

from pathlib import Path

from test_personalize_plan import CPU, fresh, params, stage  # isort: skip
from train_project import make_train_project  # isort: skip

from engine.jobs import JobFinished, run_inline
from engine.models.profiles import get_profile
from engine.personalize import personalize_plan
from engine.personalize.costs import CHECKPOINTS_ON_DISK, disk_sizes
from engine.train.config import TrainConfig


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_new_runs_estimate_holds_its_checkpoints_and_export(tmp_path, tiny_models):
    assert TrainConfig().keep_checkpoints + 1 == CHECKPOINTS_ON_DISK
    folder = make_train_project(tmp_path / "p")
    end = run_inline("train", {"project": str(folder), "profile": "tiny", "device": "cpu",
                               "config": {"steps": 3, "checkpoint_every": 1,
                                          "sample_every": 0}})
    assert isinstance(end, JobFinished), end
    run = folder / "runs" / str(end.result.run_id)
    checkpoint = max(_size(c) for c in (run / "checkpoints").iterdir())
    largest = CHECKPOINTS_ON_DISK * checkpoint + _size(run / "export") + _size(run / "cache")

    plan = personalize_plan(fresh(), params(preset="quick"), CPU, get_profile("tiny"))

    assert disk_sizes("tiny").checkpoint >= checkpoint
    assert stage(plan, "train").disk_bytes >= largest
    assert plan.disk_bytes >= largest
