"""Clear errors on every path (issue 18): each failure names the file or the field, says what
to do and what was kept, and never passes on a library's advice to switch a safety check
off; a closed pipe, an empty project or a second build are normal situations, said plainly."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest
from PIL import Image
from train_project import make_train_project

from engine.errors import DiskFullError, InputError, first_line
from engine.jobs import JobFailed, JobFinished, JobLog, run_inline
from engine.jobs.running import describe_failure
from engine.project import Project

REPO = Path(__file__).resolve().parent.parent
TINY_TRAIN = {"steps": 2, "learning_rate": 1e-3, "checkpoint_every": 1, "sample_every": 0,
              "batch_size": 1, "resolution": 64}
Usage = namedtuple("Usage", "total used free")


def mycanvas(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "desktop_app.launcher", *args],
                          capture_output=True, text=True, cwd=REPO, env=os.environ.copy(),
                          timeout=timeout)


def _photo(path: Path, colour=(200, 120, 40)) -> Path:
    image = Image.new("RGB", (96, 64), (30, 30, 30))
    image.paste(colour, (24, 16, 72, 48))
    image.save(path)
    return path


class Evil:
    """A pickle that runs code when loaded the unsafe way: it would create `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _checkpoints(folder: Path, steps=(4, 8)):
    import torch

    from engine.train.checkpoints import latest_checkpoint, save_checkpoint

    for step in steps:
        save_checkpoint(folder, step, {"w": torch.ones(3) * step},
                        {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": []},
                        {"config": {}}, keep=5)
    return latest_checkpoint(folder)


# --------------------------------------------------------------------------- 1: files we wrote


def test_a_tampered_optimizer_checkpoint_is_refused_by_name_without_unsafe_advice(tmp_path):
    import torch

    from engine.train.checkpoints import load_checkpoint

    last = _checkpoints(tmp_path / "checkpoints")
    marker = tmp_path / "PWNED"
    torch.save({"state": Evil(marker)}, last.path / "optimizer.pt")
    with pytest.raises(InputError) as caught:
        load_checkpoint(last)
    message = str(caught.value)
    assert message.startswith(f"{last.path / 'optimizer.pt'}: it holds objects other than "
                              "tensors and was refused")
    assert f"Delete the folder {last.path} to resume from the checkpoint at step 4" in message
    assert "weights_only" not in message and not marker.exists()


def test_a_garbage_checkpoint_file_names_itself_and_the_way_back(tmp_path):
    from engine.train.checkpoints import load_checkpoint

    last = _checkpoints(tmp_path / "checkpoints", steps=(4,))
    (last.path / "trainable.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(InputError, match=r"trainable\.safetensors: it is damaged") as caught:
        load_checkpoint(last)
    assert "to start the run again from step 0" in str(caught.value)
    (last.path / "trainable.safetensors").unlink()
    with pytest.raises(InputError, match=r"trainable\.safetensors: it is missing"):
        load_checkpoint(last)


def test_other_run_files_name_themselves_and_what_to_do(tmp_path):
    from engine.train.data import DatasetSnapshot
    from engine.train.export import read_manifest

    (tmp_path / "mycanvas_concepts.json").write_text("{not json")
    with pytest.raises(InputError) as caught:
        read_manifest(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path / 'mycanvas_concepts.json'}: it is damaged")
    assert "Export the run again" in str(caught.value)
    with pytest.raises(InputError, match=r"dataset\.json: not a readable dataset snapshot .*start"):
        DatasetSnapshot.from_json("[]", "runs/1/dataset.json")


def test_no_message_passes_on_advice_to_disable_a_safety_check():
    import pickle

    torch_text = ("Weights only load failed. In PyTorch 2.6, we changed the default value of "
                  "the `weights_only` argument in `torch.load` from `False` to `True`. "
                  "Re-running `torch.load` with `weights_only` set to `False` will likely "
                  "succeed, but it can result in arbitrary code execution.")
    for exc in (pickle.UnpicklingError(torch_text), InputError(f"x.pt: {torch_text}"),
                RuntimeError("pass trust_remote_code=True to load it")):
        reason = describe_failure(exc)
        assert "weights_only" not in reason and "trust_remote_code" not in reason, reason
        assert "refused" in reason
    assert "weights_only" not in first_line(torch_text)


def test_training_resume_names_a_tampered_checkpoint_and_rebuilds_a_garbage_cache(
        tiny_models, tmp_path):
    import torch

    project_dir = make_train_project(tmp_path / "project")
    params = {"project": str(project_dir), "profile": "tiny", "device": "cpu",
              "config": TINY_TRAIN}
    first = run_inline("train", params)
    assert isinstance(first, JobFinished), getattr(first, "detail", first)
    run_dir = Path(first.result.run_dir)
    last = run_dir / "checkpoints" / "step-0000002"
    torch.save({"state": Evil(tmp_path / "PWNED")}, last / "optimizer.pt")
    more = {**params, "run_id": first.result.run_id, "config": {"steps": 3}}
    failed = run_inline("train", more)
    assert isinstance(failed, JobFailed)
    assert failed.reason.startswith(f"{last / 'optimizer.pt'}: it holds objects other than")
    assert "weights_only" not in failed.reason and not (tmp_path / "PWNED").exists()
    shutil.rmtree(last)  # as the message says
    (run_dir / "cache" / "latents.safetensors").write_bytes(b"\x00" * 8 + b"garbage")
    events = []
    resumed = run_inline("train", more, events.append)
    assert isinstance(resumed, JobFinished), getattr(resumed, "detail", resumed)
    assert resumed.result.resumed_from == 1
    logs = [e.text for e in events if isinstance(e, JobLog)]
    assert any("latents.safetensors could not be read" in t and "encoding the images again" in t
               for t in logs), logs


# --------------------------------------------------------------------------- 2: a full disk


def _disk(monkeypatch, free_after: list[int]):
    """shutil.disk_usage as a disk whose free bytes follow `free_after` (last one repeats)."""
    import engine.atomic

    calls = []

    def usage(_path):
        calls.append(_path)
        return Usage(1 << 40, 0, free_after[min(len(calls), len(free_after)) - 1])

    monkeypatch.setattr(engine.atomic.shutil, "disk_usage", usage)


def test_a_checkpoint_that_does_not_fit_is_refused_before_writing(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    _checkpoints(folder, steps=(4,))
    _disk(monkeypatch, [1000])
    with pytest.raises(DiskFullError) as caught:
        _checkpoints(folder, steps=(8,))
    message = str(caught.value)
    assert message.startswith(f"No space left on the disk for {folder / 'step-0000008'} (it "
                              "needs about ")
    assert "). The checkpoint at step 4 (step-0000004) was kept." in message
    assert "resume the run (mycanvas train PROJECT --resume)" in message
    assert sorted(p.name for p in folder.iterdir()) == ["step-0000004"]


def test_a_disk_that_fills_while_a_checkpoint_is_written(tmp_path, monkeypatch):
    import torch

    folder = tmp_path / "checkpoints"
    _checkpoints(folder, steps=(4,))
    _disk(monkeypatch, [1 << 40, 4096])  # room at first, then none

    def full(*_args, **_kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DiskFullError, match=r"step-0000008 .*step 4 .* was kept"):
        _checkpoints(folder, steps=(8,))
    assert sorted(p.name for p in folder.iterdir()) == ["step-0000004"]  # no temp left


def test_an_export_that_does_not_fit_writes_nothing_and_says_so(tiny_models, tmp_path,
                                                                 monkeypatch):
    import engine.atomic

    project_dir = make_train_project(tmp_path / "project")
    out = tmp_path / "export"
    _disk(monkeypatch, [1000])
    end = run_inline("export-dataset", {"project": str(project_dir), "out_dir": str(out)})
    assert isinstance(end, JobFailed)
    assert end.reason.startswith(f"No space left on the disk for {out} (it needs about ")
    assert f"Nothing was written to {out}" in end.reason and not out.exists()
    monkeypatch.undo()
    copies = []
    real_copy = engine.atomic.atomic_copy

    def copy_until_full(src, dst):
        copies.append(dst)
        if len(copies) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_copy(src, dst)

    monkeypatch.setattr(engine.atomic, "atomic_copy", copy_until_full)
    end = run_inline("export-dataset", {"project": str(project_dir), "out_dir": str(out)})
    assert isinstance(end, JobFailed) and len(copies) == 3
    assert f"No space left on the disk for {out}" in end.reason
    assert "the part copied was removed" in end.reason
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]


def test_add_concept_stopped_by_a_full_disk_says_what_was_kept(tmp_path, monkeypatch):
    import engine.project.files

    folder = tmp_path / "p"
    Project.create(folder, "P").close()
    photos = [_photo(tmp_path / f"{n}.png", (40 * i, 90, 200)) for i, n in enumerate("abc")]
    writes = []
    real_write = engine.project.files.atomic_write_bytes

    def write_until_full(path, data):
        writes.append(path)
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(engine.project.files, "atomic_write_bytes", write_until_full)
    end = run_inline("import-photos", {"project": str(folder), "concept": "Mochi",
                                       "class_word": "cat", "paths": [str(p) for p in photos]})
    assert isinstance(end, JobFailed)
    assert end.reason.startswith(f"No space left on the disk of {folder} for b.png (it needs")
    assert ("Kept: the new concept 'Mochi' with the 1 photo imported before it (a.png); "
            "not imported: b.png, c.png.") in end.reason
    with Project.open(folder) as project:
        (mochi,) = project.concepts()
        assert [p.original_name for p in project.photos(mochi.id)] == ["a.png"]


# --------------------------------------------------------------------------- 3, 4


def test_add_concept_with_only_bad_files_claims_no_concept(tmp_path):
    folder = tmp_path / "p"
    Project.create(folder, "P").close()
    (tmp_path / "ghost.jpg").write_bytes(b"not a photo")
    proc = mycanvas("add-concept", str(folder), "Ghost", "--class", "cat",
                    str(tmp_path / "ghost.jpg"))
    assert proc.returncode == 1
    assert proc.stdout.strip() == ("No concept 'Ghost' was created: none of its 1 photo(s) "
                                   "could be imported")
    assert "existing concept" not in proc.stdout and "ghost.jpg" in proc.stderr
    with Project.open(folder) as project:
        assert project.concepts() == []


def test_training_with_models_missing_records_no_run(tiny_models, tmp_path):
    project_dir = make_train_project(tmp_path / "project")
    end = run_inline("train", {"project": str(project_dir), "profile": "sd15", "device": "cpu",
                               "config": TINY_TRAIN})
    assert isinstance(end, JobFailed)
    assert "'base' model of profile 'sd15'" in end.reason and "models download" in end.reason
    with Project.open(project_dir) as project:
        assert project.runs() == []
    proc = mycanvas("train", str(project_dir), "--resume")
    assert proc.returncode == 1 and "no unfinished training run" in proc.stderr


# --------------------------------------------------------------------------- 5: doctor


def test_doctor_checks_a_segmenter_override_the_way_loading_would(tmp_path):
    import torch
    from safetensors.torch import save_file

    from engine.models.profiles import get_profile, role_status
    from engine.settings import load_settings, save_settings

    evil = tmp_path / "sam_vit_b.pth"
    torch.save({"model": Evil(tmp_path / "PWNED")}, evil)
    settings = load_settings()
    settings.role_overrides = {"segmenter": str(evil)}
    save_settings(settings)
    report = json.loads(mycanvas("doctor", "--json").stdout)
    seg = report["profiles"]["sd15"]["segmenter"]
    assert seg["state"] == "refused" and seg["usable"] is False, seg
    assert "would run code on load" in seg["note"] and not (tmp_path / "PWNED").exists()
    assert "refused" in mycanvas("doctor").stdout
    # Unchecked (the window's quick look): said so, not "present".
    quick = role_status(get_profile("sd15"), "segmenter", {"segmenter": str(evil)})
    assert quick.mark == "present, not yet checked"
    plain = tmp_path / "sam.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    checked = role_status(get_profile("sd15"), "segmenter", {"segmenter": str(plain)},
                          verify=True)
    assert checked.mark == "present" and checked.usable is True


# --------------------------------------------------------------------------- 6: a closed pipe


@pytest.mark.parametrize("args", [("info", "{project}"), ("doctor", "--json")])
def test_a_closed_pipe_is_a_normal_end(tmp_path, args):
    folder = tmp_path / "p"
    with Project.create(folder, "P") as project:
        for n in range(40):
            project.add_concept(f"Concept {n}", "cat")
    argv = [a.format(project=folder) for a in args]
    proc = subprocess.Popen([sys.executable, "-m", "desktop_app.launcher", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                            env=os.environ.copy())
    proc.stdout.close()  # `| head -c 0`: the reader is gone before anything is written
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert b"BrokenPipe" not in err and err.strip() == b"", err


# --------------------------------------------------------------------------- 7


def test_segmenting_a_project_without_photos_says_so(tmp_path):
    folder = tmp_path / "p"
    with Project.create(folder, "P") as project:
        project.add_concept("Mochi", "cat")
    end = run_inline("segment", {"project": str(folder), "profile": "tiny"})
    assert isinstance(end, JobFailed)
    assert end.reason.startswith("The project has no photos yet: add some first")
    end = run_inline("segment", {"project": str(folder), "profile": "tiny", "concept": "Mochi"})
    assert end.reason.startswith("Concept 'Mochi' has no photos yet")


def test_a_planner_model_that_is_a_folder_is_called_a_folder(tmp_path):
    from engine.jobs.stage_setup import resolve_stage
    from engine.plan.jobs import PlanParams
    from engine.plan.planner import resolve_planner_model

    setup = resolve_stage(PlanParams(project=str(tmp_path)))
    with pytest.raises(InputError, match="is a folder, not a GGUF file"):
        resolve_planner_model(setup, str(tmp_path))


def test_a_second_build_on_a_project_stops_at_once_and_a_killed_one_lets_go(tiny_models,
                                                                             tmp_path):
    sys.path.insert(0, str(REPO / "tests"))
    from dataset_project import make_dataset_project

    project_dir = make_dataset_project(tmp_path / "project", photo_side=48)
    build = {"project": str(project_dir), "count": 2, "profile": "tiny", "device": "cpu",
             "steps": 2, "resolution": 64}
    first = subprocess.Popen(
        [sys.executable, "-m", "desktop_app.launcher", "-q", "build-dataset", str(project_dir),
         "--count", "400", "--profile", "tiny", "--device", "cpu", "--steps", "50",
         "--resolution", "64"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=os.environ.copy())
    try:
        lock = project_dir / ".build-dataset.lock"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            if lock.is_file() and str(first.pid) in lock.read_text(errors="replace"):
                break
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()
        second = run_inline("build-dataset", build)
        assert isinstance(second, JobFailed)
        assert second.reason.startswith("Cannot start: another build is running on this "
                                        f"project (process {first.pid} (mycanvas build-dataset)"
                                        ", building the dataset since ")
        proc = mycanvas("build-dataset", str(project_dir), "--count", "2", "--profile", "tiny")
        assert proc.returncode == 1 and "another build is running" in proc.stderr
    finally:
        os.kill(first.pid, signal.SIGKILL)  # a killed build leaves no lock behind
        first.communicate(timeout=60)
    after = run_inline("build-dataset", build)
    assert isinstance(after, JobFinished), getattr(after, "detail", after)
