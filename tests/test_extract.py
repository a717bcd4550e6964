"""The `extract` job on the tiny profile: iterations recorded, export loadable by plain
diffusers, masks on the project, convergence, resume after SIGKILL bit for bit, "fix a mask
and re-run", bad input, the CLI; and one full-size step behind the slow marker."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_extract_masks import cutout_scene
from worker_kill import kill_then_resume

from engine.extract.config import ExtractConfig

# The photo: the cut-out scene cropped to 160×120 (not square: it is letterboxed).
PHOTO_W, PHOTO_H = 160, 120
HORSE_BOX = [0.0, 20.0, 95.0, 105.0]
DISC_BOX = [88.0, 25.0, 160.0, 100.0]
FAST = {"steps": 8, "iterations": 2, "checkpoint_every": 4}


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory) -> Path:
    from PIL import Image

    picture, _ = cutout_scene(160)
    path = tmp_path_factory.mktemp("photo") / "pets on the sofa.png"
    Image.fromarray(picture[20:140]).save(path)
    return path


@pytest.fixture
def project_dir(tmp_path) -> Path:
    from engine.project import Project

    Project.create(tmp_path / "project", "Extraction test").close()
    return tmp_path / "project"


def _concepts(boxes: bool = True) -> list[dict]:
    mochi = {"name": "Mochi", "class_word": "horse"}
    rex = {"name": "Rex", "class_word": "cup"}
    if boxes:
        mochi["box"], rex["box"] = HORSE_BOX, DISC_BOX
    return [mochi, rex]


def _extract(project_dir, photo, concepts, config, run_id=None, sink=None, cancel=None,
             **extra):
    from engine.jobs import run_inline

    params = {"project": str(project_dir), "photo": str(photo), "profile": "tiny",
              "device": "cpu", "concepts": concepts, "config": config, "run_id": run_id,
              "segment_method": "fallback", **extra}
    return run_inline("extract", params, sink, cancel)


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _export_tensors(export_dir: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for path in sorted(Path(export_dir).glob("*.safetensors")):
        out.update({f"{path.name}:{k}": v for k, v in load_file(str(path)).items()})
    return out


def _same_run(a: Path, b: Path) -> None:
    """Two runs ended bit for bit alike: metrics (less timings), exports, masks."""
    def figures(run_dir: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in _records(run_dir)]

    assert figures(a) == figures(b)
    x, y = _export_tensors(a / "export"), _export_tensors(b / "export")
    assert x.keys() == y.keys() and all(bool((x[k] == y[k]).all()) for k in x)
    for folder in sorted((b / "masks").iterdir()):
        for png in sorted(folder.glob("*.png")):
            assert (a / "masks" / folder.name / png.name).read_bytes() == png.read_bytes()


# --------------------------------------------------------------------------- the job


def test_extract_job_records_iterations_exports_and_stores_masks(tiny_models, project_dir,
                                                                 photo_file):
    from engine.extract import read_iterations
    from engine.jobs import JobFinished, JobPreview, JobProgress
    from engine.masks import read_mask
    from engine.project import Project

    events: list = []
    end = _extract(project_dir, photo_file, _concepts(), FAST, sink=events.append)
    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    result = end.result
    run_dir = Path(result.run_dir)
    assert result.steps == 8 and result.iterations == 2 and not result.converged
    records = _records(run_dir)
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 9))
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["attention_loss"]) for r in steps)
    assert [r["phase"] for r in steps] == [1.0] * 4 + [2.0] * 4
    iterations = [r for r in records if "iteration" in r]
    assert [(r["iteration"], r["step"]) for r in iterations] == [(0, 0), (1, 4), (2, 8)]
    assert iterations[0]["sources"] == {"<mochi>": "fallback-grabcut-refined",
                                        "<rex>": "fallback-grabcut-refined"}
    assert set(iterations[2]["iou"]) == {"<mochi>", "<rex>"}
    assert all(np.isfinite(v) for v in iterations[2]["concept_loss"].values())
    read = read_iterations(run_dir)
    assert [r.iteration for r in read] == [0, 1, 2]
    for record in read:
        assert record.overlay.is_file() and set(record.masks) == {"<mochi>", "<rex>"}
        shapes = {read_mask(str(p)).shape for p in record.masks.values()}
        assert shapes == {(48, 64)}  # the photo's aspect at 64 px
    assert sum(isinstance(e, JobPreview) for e in events) == 3  # initial + 2 iterations
    progress = [e for e in events if isinstance(e, JobProgress) and e.total == 8]
    assert progress[-1].step == 8 and any(e.eta_seconds is not None for e in progress)
    with Project.open(project_dir) as project:
        run = project.run(result.run_id)
        concepts = {c.name: c for c in project.concepts()}
        assert run.kind == "em-extract" and run.status == "finished"
        assert run.config["outcome"]["masks"] == {c["token"]: c["mask_id"]
                                                  for c in result.concepts}
        for info in result.concepts:
            concept = concepts[info["name"]]
            assert concept.token == info["token"] and concept.class_word == info["class_word"]
            photo = project.photo(info["photo_id"])
            assert photo.concept_id == concept.id and (photo.width, photo.height) == (160, 120)
            mask = project.current_masks(concept.id)[photo.id]
            assert mask.id == info["mask_id"] and mask.method == "em-extract"
            assert mask.cutout_file and project.abspath(mask.cutout_file).is_file()
            assert read_mask(str(project.abspath(mask.file))).shape == (120, 160)
        assert len({p.file for p in project.photos()}) == 1  # one stored file, two records
        masks = [read_mask(str(project.abspath(project.current_masks(c.id)[p.id].file)))
                 for c in concepts.values() for p in project.photos(c.id)]
        assert not (masks[0] & masks[1]).any()
    manifest = json.loads((run_dir / "export" / "mycanvas_concepts.json").read_text())
    assert manifest["kind"] == "em-extract" and manifest["global_token"] is None
    assert manifest["token_files"] == {"<mochi>": "mochi.safetensors",
                                       "<rex>": "rex.safetensors"}
    assert manifest["example_prompt"] == "a photo of <mochi> horse and <rex> cup"
    assert "Run 1: 8 steps, 2 iterations" in result.summary()


def test_export_loads_in_plain_diffusers_and_in_generation(tiny_models, project_dir,
                                                           photo_file):
    import torch
    from diffusers.models.attention_processor import CustomDiffusionAttnProcessor

    from engine.models.loaders import load_text_to_image
    from engine.train import WEIGHTS_NAME, apply_concepts, read_manifest

    end = _extract(project_dir, photo_file, _concepts(),
                   {**FAST, "background_token": True})
    export = Path(end.result.export_dir)
    manifest = read_manifest(export)
    assert manifest["background_token"] == "<background>"
    assert set(manifest["token_files"]) == {"<mochi>", "<rex>", "<background>"}
    trained = _export_tensors(export)
    pipe = load_text_to_image(tiny_models["base"])
    pipe.unet.load_attn_procs(str(export), weight_name=WEIGHTS_NAME, _pipeline=pipe)
    assert all(isinstance(p, CustomDiffusionAttnProcessor)
               for p in pipe.unet.attn_processors.values())
    for token, file in manifest["token_files"].items():
        pipe.load_textual_inversion(str(export / file))
        row = pipe.text_encoder.get_input_embeddings().weight[
            pipe.tokenizer.convert_tokens_to_ids(token)]
        assert torch.equal(row, trained[f"{file}:{token}"])
    ours = load_text_to_image(tiny_models["base"])
    assert apply_concepts(ours, export) == list(manifest["token_files"])
    base = load_text_to_image(tiny_models["base"])
    outputs = []
    for p in (pipe, ours, base):
        with torch.no_grad():
            ids = p.tokenizer(manifest["example_prompt"], padding="max_length", max_length=77,
                              return_tensors="pt").input_ids
            latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
            outputs.append(p.unet(latents, torch.tensor([500]), p.text_encoder(ids)[0]).sample)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(outputs[0], outputs[2])
    concepts = pytest.importorskip("engine.generate.concepts")  # generation's one loader
    found = concepts.read_run_export(export, end.result.run_id, "em-extract")
    assert [c.token for c in found.concepts] == ["<mochi>", "<rex>"]


def test_initial_masks_from_the_class_words_and_an_early_stop(tiny_models, project_dir,
                                                              photo_file):
    """No boxes: the masks start from the class words' attention. With converge_iou 0 the
    masks count as converged at the first E-step of phase two: the run stops there."""
    from engine.jobs import JobFinished

    config = {"steps": 12, "iterations": 4, "checkpoint_every": 5, "converge_iou": 0.0}
    end = _extract(project_dir, photo_file, _concepts(boxes=False), config)
    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    result = end.result
    assert result.converged and result.steps == 9 and result.iterations == 3
    records = _records(Path(result.run_dir))
    assert max(r["step"] for r in records if "loss" in r) == 9
    assert records[0]["sources"] == {"<mochi>": "attention", "<rex>": "attention"}
    assert [r["converged"] for r in records if "iteration" in r] == [False, False, False, True]
    assert (Path(result.run_dir) / "checkpoints" / "step-0000009").is_dir()
    assert "masks converged" in result.summary()


def test_fix_a_mask_and_re_run(tiny_models, project_dir, photo_file):
    """The user repaints Rex's mask; extracting again (photo by id, no boxes) starts from the
    concepts' current masks, the fixed one among them, and reuses the concepts."""
    from engine.extract import read_iterations
    from engine.extract.mask_ops import Frame
    from engine.masks import mask_iou, mask_png, read_mask
    from engine.project import Project

    first = _extract(project_dir, photo_file, _concepts(), FAST).result
    fixed = np.zeros((PHOTO_H, PHOTO_W), bool)
    fixed[30:95, 100:150] = True
    with Project.open(project_dir) as project:
        rex = project.concept_by_name("Rex")
        photo_id = next(c["photo_id"] for c in first.concepts if c["name"] == "Rex")
        project.add_mask(photo_id, rex.id, project.put_bytes(mask_png(fixed), "png"),
                         "painted")
        concept_count = len(project.concepts())
    second = _extract(project_dir, photo_id, _concepts(boxes=False), FAST).result
    assert second.run_id == first.run_id + 1
    start = read_iterations(second.run_dir)[0]
    assert start.sources == {"<mochi>": "project mask", "<rex>": "project mask"}
    frame = Frame(PHOTO_W, PHOTO_H, 64)
    assert mask_iou(read_mask(str(start.masks["<rex>"])),
                    frame.crop(frame.mask_to_square(fixed))) == 1.0
    with Project.open(project_dir) as project:
        assert len(project.concepts()) == concept_count
        assert {c.name for c in project.concepts()} == {"Mochi", "Rex"}
    assert read_mask(str(start.masks["<mochi>"])).any()


def test_cancel_keeps_the_run_resumable_and_resume_refuses_changed_settings(
        tiny_models, project_dir, photo_file):
    from engine.jobs import CancelToken, JobCancelled, JobFailed, JobFinished, JobProgress
    from engine.project import Project

    token = CancelToken()

    def cancel_at_five(event):
        if isinstance(event, JobProgress) and event.total == 8 and event.step == 5:
            token.cancel()

    end = _extract(project_dir, photo_file, _concepts(), FAST, sink=cancel_at_five,
                   cancel=token)
    assert isinstance(end, JobCancelled)
    with Project.open(project_dir) as project:
        run = project.runs("em-extract")[-1]
        from engine.extract import latest_resumable_extraction

        assert run.status == "cancelled" and latest_resumable_extraction(project) == run.id
    refused = _extract(project_dir, None, [], {"steps": 99}, run_id=run.id)
    assert isinstance(refused, JobFailed) and "only checkpoint_every" in refused.reason
    resumed = _extract(project_dir, None, [], {}, run_id=run.id)
    assert isinstance(resumed, JobFinished), getattr(resumed, "detail", resumed)
    assert resumed.result.resumed_from == 6 and resumed.result.steps == 8


def test_resume_after_the_worker_is_killed_repeats_the_uninterrupted_run(
        tiny_models, project_dir, photo_file, tmp_path):
    """SIGKILL the worker mid-run; the resumed run ends bit for bit where an uninterrupted
    run ends: metrics, every iteration's masks, the export and the project's masks."""
    from engine.jobs import JobFinished
    from engine.project import Project

    config = {"steps": 60, "iterations": 5, "checkpoint_every": 5}
    twin = tmp_path / "twin"
    shutil.copytree(project_dir, twin)
    params = {"project": str(project_dir), "photo": str(photo_file), "profile": "tiny",
              "device": "cpu", "concepts": _concepts(), "config": config,
              "segment_method": "fallback"}
    # In phase two (from step 30): the checkpoint holds the second optimiser.
    _result, run_dir = kill_then_resume("extract", params, project_dir, "em-extract",
                                        total=60, kill_from=37, saved=range(35, 60))
    straight = _extract(twin, photo_file, _concepts(), config)
    assert isinstance(straight, JobFinished)
    _same_run(run_dir, Path(straight.result.run_dir))
    with Project.open(project_dir) as a, Project.open(twin) as b:
        files_a = sorted(m.file for m in a.masks() if m.method == "em-extract")
        files_b = sorted(m.file for m in b.masks() if m.method == "em-extract")
    assert files_a == files_b and len(files_a) == 2


def test_running_a_finished_run_again_adds_nothing(tiny_models, project_dir, photo_file):
    """E.g. a kill after the masks were stored but before the run was marked finished: the
    resume exports again and finds the masks already there."""
    from engine.jobs import JobFinished
    from engine.project import Project

    first = _extract(project_dir, photo_file, _concepts(), FAST).result
    with Project.open(project_dir) as project:
        masks = [m.id for m in project.masks()]
    again = _extract(project_dir, None, [], {}, run_id=first.run_id)
    assert isinstance(again, JobFinished) and again.result.resumed_from == 8
    assert again.result.concepts == first.concepts
    with Project.open(project_dir) as project:
        assert [m.id for m in project.masks()] == masks


def test_concepts_kept_only_inside_the_run_leave_the_list_when_it_finishes(
        tiny_models, project_dir, photo_file):
    """add_concepts false: the run learns and exports its concepts, the project's list
    keeps only what it had (here Rex, which was there before, stays)."""
    from engine.generate import load_run_concepts
    from engine.project import Project

    with Project.open(project_dir) as project:
        project.add_concept("Rex", "cup")
    done = _extract(project_dir, photo_file, _concepts(), FAST, add_concepts=False).result
    assert not done.added_to_project and "Kept only inside run" in done.summary()
    with Project.open(project_dir) as project:
        assert [c.name for c in project.concepts()] == ["Rex"]
        assert project.photos(project.concepts()[0].id)  # Rex keeps its record of the photo
        assert {c.token for c in load_run_concepts(project, done.run_id).concepts} == \
            {"<mochi>", "<rex>"}
    kept = _extract(project_dir, photo_file, _concepts(), FAST).result  # the default: added
    assert kept.added_to_project
    with Project.open(project_dir) as project:
        assert sorted(c.name for c in project.concepts()) == ["Mochi", "Rex"]


# --------------------------------------------------------------------------- bad input


def _state(project_dir: Path) -> tuple:
    from engine.project import Project

    with Project.open(project_dir) as project:
        return ([(c.name, c.class_word) for c in project.concepts()],
                [(p.concept_id, p.file) for p in project.photos()],
                len(project.runs()), len(project.masks()),
                sorted(p.name for p in (project.root / "files").rglob("*") if p.is_file()))


@pytest.mark.parametrize("case,message", [
    ("no photo id", "No photo with id 99"),
    ("missing file", "no such file"),
    ("box outside", "lies outside the photo"),
    ("class mismatch", "is a horse, not a dog"),
    ("same class no boxes", "give Tama a box"),
    ("named twice", "is named twice"),
    ("too many", "Name 1 to 4 concepts"),
    ("bad click", "lies outside the photo"),
])
def test_bad_input_is_one_clear_line_and_changes_nothing(tiny_models, project_dir, photo_file,
                                                         case, message):
    from engine.jobs import JobFailed
    from engine.project import Project

    with Project.open(project_dir) as project:  # an existing concept, for the mismatch
        project.add_concept("Mochi", "horse")
    before = _state(project_dir)
    concepts, photo = _concepts(), str(photo_file)
    if case == "no photo id":
        photo = "99"
    elif case == "missing file":
        photo = str(photo_file.with_name("nowhere.png"))
    elif case == "box outside":
        concepts[1]["box"] = [200.0, 10.0, 260.0, 50.0]
    elif case == "class mismatch":
        concepts[0]["class_word"] = "dog"
    elif case == "same class no boxes":
        concepts = [{"name": "Tama", "class_word": "cup"}, {**concepts[1]}]
    elif case == "named twice":
        concepts = [concepts[0], {**concepts[0], "box": DISC_BOX}]
    elif case == "too many":
        concepts = [{"name": f"c{i}", "class_word": "cup", "box": HORSE_BOX} for i in range(5)]
    elif case == "bad click":
        concepts[0] = {"name": "Mochi", "class_word": "horse", "points": [[500, 5]],
                       "labels": [1]}
    end = _extract(project_dir, photo, concepts, FAST)
    assert isinstance(end, JobFailed) and message in end.reason, getattr(end, "reason", end)
    assert "\n" not in end.reason
    assert _state(project_dir) == before


# --------------------------------------------------------------------------- the CLI


def test_cli_extract_runs_and_resume_needs_an_unfinished_run(tiny_models, project_dir,
                                                            photo_file):
    repo = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "desktop_app.launcher", "extract", str(project_dir),
           str(photo_file), "--concepts", "mochi:horse,rex:cup", "--box", "mochi",
           *map(str, HORSE_BOX), "--box", "rex", *map(str, DISC_BOX), "--steps", "4",
           "--iterations", "2", "--profile", "tiny", "--device", "cpu",
           "--segment-method", "fallback"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=repo, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Run 1: 4 steps, 2 iterations" in proc.stdout and "<mochi> mochi (horse)" in \
        proc.stdout
    again = subprocess.run([*cmd[:5], "--resume"], capture_output=True, text=True, cwd=repo,
                           timeout=300)
    assert again.returncode == 1 and "no unfinished extraction run" in again.stderr
    bad = subprocess.run([*cmd[:6], "--concepts", "mochi"], capture_output=True, text=True,
                         cwd=repo, timeout=300)
    assert bad.returncode == 1 and "name:class pairs" in bad.stderr
    from engine.project import Project

    with Project.open(project_dir) as project:
        assert project.run(1).config["extract"]["steps"] == 4


# --------------------------------------------------------------------------- full size


@pytest.mark.slow
def test_full_size_sd15_architecture_runs_an_m_step_and_an_e_step(tmp_path):
    """SD 1.5's architecture with random weights at 512 px: Break-A-Scene's five 16×16
    layers are recorded, one phase-two M-step, one E-step, the export."""
    import torch
    from sd15_text2image import build_sd15_pipeline

    from engine.extract.attention import capture_attention
    from engine.extract.estep import MaskSettings, estimate_masks
    from engine.extract.model import ExtractionModel
    from engine.train import ConceptRef, export_concepts, plan_precision

    picture, truth = cutout_scene(512)
    cfg = ExtractConfig(steps=2, iterations=1, phase_one_steps=0, resolution=512)
    refs = [ConceptRef("<mochi>", "horse"), ConceptRef("<rex>", "cup")]
    model = ExtractionModel(build_sd15_pipeline(), refs, plan_precision("cpu", "auto"), cfg)
    model.encode_photo(picture)
    with capture_attention(model.unet) as capture:
        assert len(capture.layers) == 5 and model.latent_side >> capture.level == 16
        model.set_masks(truth, 16)
        record = model.train_step(0, capture)
        assert record["phase"] == 2.0 and np.isfinite(record["loss"])
        assert record["grad_norm"] > 0
        maps, losses = model.photo_attention(model.prompt([0, 1]), capture,
                                             torch.Generator().manual_seed(0), truth)
    assert maps.shape == (2, 16, 16) and len(losses) == 2
    masks = estimate_masks(maps, picture, np.ones((512, 512), bool), MaskSettings(),
                           previous=truth)
    assert masks.shape == (2, 512, 512) and not (masks[0] & masks[1]).any()
    export_concepts(model, tmp_path / "export", {"run_id": 0})
    assert (tmp_path / "export" / "mochi.safetensors").stat().st_size > 3000
