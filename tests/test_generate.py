"""Generation from a run's concepts on the tiny profile: the loader, recipes, the job, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from generate_project import BOXES, PROMPT, add_copied_run, make_generate_project
from PIL import Image

FAST = {"device": "cpu", "steps": 3}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_generate_project(tmp_path_factory.mktemp("generate") / "template")


@pytest.fixture
def project(template, tmp_path):
    folder, run_a, run_b = template
    target = tmp_path / "project"
    shutil.copytree(folder, target)
    return target, run_a, run_b


def _generate(folder, sink=None, cancel=None, models=None, **params):
    from engine.jobs import JobContext, JobSpec, run_job

    spec = JobSpec("generate", {"project": str(folder), **FAST, **params})
    ctx = JobContext(spec.job_id, sink or (lambda _e: None), cancel, models=models)
    return run_job(spec, ctx)


def _ok(end):
    from engine.jobs import JobFinished

    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    return end.result


def _pixels(folder: Path, rel: str) -> np.ndarray:
    with Image.open(folder / rel) as image:
        return np.asarray(image.convert("RGB"))


def _base_pipe(tiny_models):
    from engine.models.loaders import load_text_to_image

    return load_text_to_image(tiny_models["base"])


def _unet_out(pipe, prompt: str):
    import torch

    with torch.no_grad():
        ids = pipe.tokenizer(prompt, padding="max_length", max_length=77,
                             return_tensors="pt").input_ids
        states = pipe.text_encoder(ids)[0]
        latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
        return states, pipe.unet(latents, torch.tensor([500]), states).sample


# --------------------------------------------------------------------------- the loader


def test_runs_of_both_kinds_read_through_one_loader(project):
    from engine.generate import load_run_concepts, newest_finished_run
    from engine.project import Project

    folder, run_a, run_b = project
    extract = add_copied_run(folder, run_a)
    with Project.open(folder) as proj:
        a, b, x = (load_run_concepts(proj, r) for r in (run_a, run_b, extract))
        assert newest_finished_run(proj) == extract
    assert (a.kind, x.kind) == ("custom-diffusion", "em-extract")
    assert a.profile == x.profile == "tiny"
    assert a.tokens == ("<mochi>", "<cup>", "<rocket>", "<composition>") == b.tokens
    assert [c.name for c in a.concepts] == ["Mochi", "Cup", "Rocket"]
    assert a.global_token == "<composition>" and a.strategies.repeat_concept_tokens
    assert a.fingerprint == x.fingerprint != b.fingerprint  # same files, other weights
    assert a.concept("mochi").token == a.concept("<mochi>").token == "<mochi>"


def test_concepts_change_the_unet_and_unloading_restores_the_base_exactly(project, tiny_models):
    import torch

    from engine.generate import apply_concepts, load_run_concepts, unload_concepts
    from engine.project import Project

    folder, run_a, _ = project
    with Project.open(folder) as proj:
        run = load_run_concepts(proj, run_a)
    pipe = _base_pipe(tiny_models)
    tokenizer, embedding = pipe.tokenizer, pipe.text_encoder.get_input_embeddings()
    base_states, base_out = _unet_out(pipe, "a photo of a cat")

    loaded = apply_concepts(pipe, run)
    states, out = _unet_out(pipe, "a photo of a cat")
    assert torch.equal(states, base_states)  # no learned token: the same text states
    assert not torch.allclose(out, base_out)  # the learned k/v change the UNet's output
    assert list(loaded.token_ids.values()) == list(range(49408, 49412))
    assert pipe.tokenizer("<mochi> cat").input_ids[1] == loaded.token_ids["<mochi>"]
    assert len(tokenizer) == 49408  # the original tokenizer is untouched

    unload_concepts(pipe, loaded)
    states, out = _unet_out(pipe, "a photo of a cat")
    assert torch.equal(states, base_states) and torch.equal(out, base_out)
    assert pipe.tokenizer is tokenizer and pipe.text_encoder.get_input_embeddings() is embedding
    assert "<mochi>" not in pipe.tokenizer.get_vocab()


def test_our_loader_matches_plain_diffusers(project, tiny_models):
    """The same export through diffusers' own loaders (with the `_pipeline` it needs) gives
    the same UNet output for a prompt with the learned tokens."""
    import torch

    from engine.generate import apply_concepts, load_run_concepts
    from engine.project import Project

    folder, run_a, _ = project
    with Project.open(folder) as proj:
        run = load_run_concepts(proj, run_a)
    ours = _base_pipe(tiny_models)
    apply_concepts(ours, run)
    plain = _base_pipe(tiny_models)
    plain.unet.load_attn_procs(str(run.export_dir), weight_name=run.weights_file.name,
                               _pipeline=plain)
    for token, path in run.token_files.items():
        plain.load_textual_inversion(str(path), token=token)
    prompt = "<composition> a photo of <mochi> cat and <cup> mug"
    (s1, o1), (s2, o2) = _unet_out(ours, prompt), _unet_out(plain, prompt)
    torch.testing.assert_close(s1, s2, rtol=0, atol=0)
    torch.testing.assert_close(o1, o2, rtol=1e-5, atol=1e-6)


def test_switching_runs_in_one_warm_worker(project):
    """Run A, run B, run A again in one worker process: the base pipeline stays warm, each
    switch unloads the previous run's tokens first, and A's picture comes back the same."""
    from engine.jobs import JobFinished
    from engine.jobs.worker import JobRunner

    folder, run_a, run_b = project
    params = {"project": str(folder), **FAST, "prompt": PROMPT, "seed": 11}
    with JobRunner() as runner:
        handles = [runner.submit("generate", {**params, "run_id": r})
                   for r in (run_a, run_b, run_a)]
        ends = [h.wait(timeout=240) for h in handles]
    assert all(isinstance(e, JobFinished) for e in ends), [getattr(e, "reason", e) for e in ends]
    logs = [[e.text for e in h.events if type(e).__name__ == "JobLog"] for h in handles]
    assert sum("Loading the base model" in t for log in logs for t in log) == 1
    assert all(any("Loaded the concepts" in t for t in log) for log in logs)
    first, other, again = (_pixels(folder, e.result.image_files[0]) for e in ends)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    alone = _ok(_generate(folder, run_id=run_a, prompt=PROMPT, seed=11))  # a fresh model
    assert np.array_equal(first, _pixels(folder, alone.image_files[0]))


def test_a_warm_model_switches_runs_and_back_to_the_base(project):
    from engine.jobs.warm_cache import WarmCache

    folder, run_a, run_b = project
    models = WarmCache()
    _ok(_generate(folder, models=models, run_id=run_a, prompt=PROMPT, seed=1))
    # the generation model; the scoring models the job also kept warm are not looked at
    (model,) = [models.get(k) for k in models.loaded_keys() if k.role == "base"]
    assert model.loaded.run.run_id == run_a
    _ok(_generate(folder, models=models, run_id=run_b, prompt=PROMPT, seed=1))
    assert model.loaded.run.run_id == run_b and len(model.pipe.tokenizer) == 49412
    model.use_base()
    assert len(model.pipe.tokenizer) == 49408 and model.loaded is None


# --------------------------------------------------------------------------- recipes


def test_a_recipe_makes_the_same_pixels_again(project):
    from engine.generate import read_recipe_file
    from engine.project import Project

    folder, run_a, _ = project
    made = _ok(_generate(folder, run_id=run_a, prompt=PROMPT, count=2, seed=5,
                         negative="blurry", scheduler="euler-a", boxes=BOXES))
    assert made.seeds == [5, 6] and len(made.generation_ids) == 2
    with Project.open(folder) as proj:
        gen = proj.generation(made.generation_ids[1])
    recipe = gen.settings
    assert (recipe["seed"], recipe["scheduler"], recipe["negative_prompt"]) == (6, "euler-a",
                                                                                 "blurry")
    assert recipe["run_id"] == run_a and recipe["profile"] == "tiny"
    assert recipe["model"]["source"].startswith("tiny:") and recipe["model"]["fingerprint"]
    assert [b["token"] for b in recipe["layout"]["boxes"]] == ["<mochi>", "<cup>"]
    assert recipe["app_version"] and recipe["precision"].startswith("float32")
    assert (recipe["batch"], recipe["index"]) == (made.batch, 1)

    again = _ok(_generate(folder, recipe=recipe))
    assert np.array_equal(_pixels(folder, again.image_files[0]), _pixels(folder, gen.image_file))
    from_png = read_recipe_file(folder / gen.image_file)  # the PNG carries the recipe
    assert from_png.to_dict() == {k: v for k, v in recipe.items() if k not in ("batch", "index")}
    with Image.open(folder / gen.image_file) as image:
        assert "Seed: 6" in image.text["parameters"] and "CFG scale: 7.5" in image.text[
            "parameters"]
    other_seed = _pixels(folder, made.image_files[0])
    assert not np.array_equal(other_seed, _pixels(folder, gen.image_file))


def test_every_recipe_field_shapes_the_picture(project):
    """Each setting a recipe records is used: changing one changes the pixels."""
    from engine.project import Project

    folder, run_a, _ = project
    made = _ok(_generate(folder, run_id=run_a, prompt=PROMPT, seed=5, negative="blurry",
                         scheduler="euler-a", boxes=BOXES))
    with Project.open(folder) as proj:
        recipe = proj.generation(made.generation_ids[0]).settings
    reference = _pixels(folder, made.image_files[0])
    changes = {"seed": 6, "negative_prompt": "", "scheduler": "ddim", "guidance": 3.0,
               "steps": 4, "layout": None, "prompt": "<mochi> cat and <cup> mug in snow",
               "width": 72}
    for key, value in changes.items():
        other = _ok(_generate(folder, recipe={**recipe, key: value}))
        pixels = _pixels(folder, other.image_files[0])
        assert pixels.shape != reference.shape or not np.array_equal(pixels, reference), key


def test_recipe_files_are_validated(tmp_path):
    from engine.errors import InputError
    from engine.generate import read_recipe_file

    bad = tmp_path / "bad.json"
    for text, message in (("{", "not valid JSON"), ('{"format": "x"}', "not a MyCanvas recipe"),
                          (json.dumps({"format": "mycanvas-recipe", "version": 99}), "newer")):
        bad.write_text(text)
        with pytest.raises(InputError, match=message):
            read_recipe_file(bad)
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    with pytest.raises(InputError, match="carries no MyCanvas recipe"):
        read_recipe_file(tmp_path / "plain.png")


# --------------------------------------------------------------------------- the job


def test_progress_counts_steps_over_all_pictures_with_previews(project):
    from engine.jobs import JobPreview, JobProgress

    folder, run_a, _ = project
    events = []
    _ok(_generate(folder, sink=events.append, run_id=run_a, prompt=PROMPT, count=3, seed=0,
                  steps=4, preview_every=2))
    progress = [e for e in events if isinstance(e, JobProgress) and e.total == 15]
    assert [e.step for e in progress] == sorted(e.step for e in progress)  # PNDM: 5 calls each
    assert progress[-1].step == 15 and any(e.eta_seconds is not None for e in progress)
    previews = [e for e in events if isinstance(e, JobPreview)]
    assert [p.caption for p in previews[:3]] == ["picture 1/3, step 2", "picture 1/3, step 4",
                                                 "picture 1/3 done"]
    assert len(previews) == 9


def test_cancel_mid_picture_stores_nothing_half_done_and_resume_makes_the_rest(project):
    from engine.jobs import CancelToken, JobCancelled, JobProgress
    from engine.jobs.journal import JournalWriter
    from engine.project import Project

    folder, run_a, _ = project
    files_before = set((folder / "files").rglob("*.png"))
    token, journal = CancelToken(), JournalWriter()

    def sink(event):
        journal(event)
        if isinstance(event, JobProgress) and "picture 2/3, step 2" in event.message:
            token.cancel()

    end = _generate(folder, sink=sink, cancel=token, run_id=run_a, prompt=PROMPT, count=3)
    journal.close()
    assert isinstance(end, JobCancelled)
    with Project.open(folder) as proj:
        (gen,) = proj.generations()
        entry = proj.journal(1)[0]
    assert (folder / gen.image_file).is_file()
    assert set((folder / "files").rglob("*.png")) - files_before == {folder / gen.image_file}

    resumed = _ok(_generate(folder, **{k: v for k, v in entry.resume_params.items()
                                       if k != "project"}))
    assert resumed.already == 1 and len(resumed.generation_ids) == 2
    with Project.open(folder) as proj:
        gens = proj.generations()
    assert [g.settings["index"] for g in gens] == [0, 1, 2]
    assert [g.seed for g in gens] == [gen.seed, gen.seed + 1, gen.seed + 2]


def test_prompts_from_concepts_and_layouts_speak_the_training_language(project):
    from engine.project import Layout, LayoutObject, Project

    folder, run_a, _ = project
    made = _ok(_generate(folder, run_id=run_a, concepts=["Mochi", "<cup>"], scene="on a beach",
                         seed=0))
    assert made.prompt == ("<composition> a photo of <mochi> cat and <cup> mug, <mochi> cat, "
                           "<cup> mug. background: a beach")
    with Project.open(folder) as proj:
        mochi, cup = (proj.concept_by_name(n) for n in ("Mochi", "Cup"))
        layout = proj.add_layout(Layout(scene="a snowy mountain", objects=(
            LayoutObject(cup.id, 0.55, 0.3, 0.4, 0.6), LayoutObject(mochi.id, 0.05, 0.2, 0.45,
                                                                      0.7))))
    made = _ok(_generate(folder, run_id=run_a, layout_id=layout.id, seed=0))
    assert made.prompt.startswith("<composition> a photo of <cup> mug and <mochi> cat")
    assert made.prompt.endswith("background: a snowy mountain")
    with Project.open(folder) as proj:
        spec = proj.generation(made.generation_ids[0]).settings["layout"]
    assert spec["layout_id"] == layout.id and spec["guided_fraction"] == 0.3
    assert [(b["token"], b["x"], b["w"]) for b in spec["boxes"]] == [("<cup>", 0.55, 0.4),
                                                                     ("<mochi>", 0.05, 0.45)]


BAD_INPUTS = [
    ({"prompt": "<mochi> cat with <ghost>"}, "names <ghost>, which run"),
    ({"prompt": PROMPT, "profile": "sd15"}, "was trained on profile 'tiny'"),
    ({"prompt": PROMPT, "boxes": {"mochi": [0.2, 0.1, 1.3, 0.9]}}, "outside the canvas"),
    ({"prompt": PROMPT, "boxes": {"mochi": [0.5, 0.1, 0.2, 0.9]}}, "is empty"),
    ({"prompt": PROMPT, "boxes": {"rocket": [0, 0, 0.5, 0.5]}}, "prompt does not name it"),
    ({"prompt": PROMPT, "boxes": {"tiger": [0, 0, 0.5, 0.5]}}, "learned no concept 'tiger'"),
    ({"concepts": ["mochi"], "prompt": PROMPT}, "either a prompt or concepts"),
    ({"prompt": PROMPT, "width": 100}, "multiple of 8"),
    ({"prompt": "   "}, "prompt is empty"),
    ({"prompt": PROMPT, "scene": "a forest"}, "a prompt names its own"),
    ({}, "Give a prompt"),
    ({"prompt": PROMPT, "run_id": 99}, "No run with id 99"),
]


@pytest.mark.parametrize(("params", "message"), BAD_INPUTS)
def test_bad_inputs_fail_in_one_line_and_change_nothing(project, params, message):
    from engine.errors import MyCanvasError
    from engine.jobs import JobFailed
    from engine.project import Project

    folder, run_a, _ = project
    try:  # parameters are checked when made (before the job runs), the rest in the job
        end = _generate(folder, **{"run_id": run_a, **params})
    except MyCanvasError as exc:
        reason = str(exc)
    else:
        assert isinstance(end, JobFailed), end
        reason = end.reason
    assert message in reason and "\n" not in reason, reason
    with Project.open(folder) as proj:
        assert proj.generations() == []


def test_unusable_runs_fail_in_one_line(project):
    from engine.jobs import JobFailed
    from engine.project import Project, Run

    folder, run_a, run_b = project
    other_profile = add_copied_run(folder, run_a, base_model={"profile": "sd15"})
    with Project.open(folder) as proj:
        running = proj.add_run(Run(kind="custom-diffusion", status="running")).id
        planner = proj.add_run(Run(kind="plan-eval", status="finished")).id
    misfit = add_copied_run(folder, run_a)
    from safetensors.torch import load_file, save_file

    weights = folder / "runs" / str(misfit) / "export" / \
        "pytorch_custom_diffusion_weights.safetensors"
    state = load_file(str(weights))
    key = next(k for k, v in state.items() if v.numel())
    state[key] = state[key][:, :8].contiguous()  # a layer of another width
    save_file(state, str(weights))
    shutil.rmtree(folder / "runs" / str(run_b) / "export")  # its files deleted
    cases = [(other_profile, {"profile": "tiny"}, "was trained on profile 'sd15'"),
             (running, {}, "has not finished (it is running)"),
             (planner, {}, "has no concepts to generate with"),
             (run_b, {}, "has no exported concepts"),
             (misfit, {}, "do not fit this model")]
    for run_id, extra, message in cases:
        end = _generate(folder, run_id=run_id, prompt=PROMPT, **extra)
        assert isinstance(end, JobFailed) and message in end.reason, (run_id, end)
        assert "\n" not in end.reason


def test_an_extraction_run_generates_like_the_training_run_it_copies(project):
    folder, run_a, _ = project
    extract = add_copied_run(folder, run_a)
    a = _ok(_generate(folder, run_id=run_a, prompt=PROMPT, seed=4))
    x = _ok(_generate(folder, prompt=PROMPT, seed=4))  # the newest finished run: the copy
    assert x.run_id == extract
    assert np.array_equal(_pixels(folder, a.image_files[0]), _pixels(folder, x.image_files[0]))


def test_bf16_plan_on_cpu_autocasts_with_fp32_weights(tiny_models):
    """A CPU plan with dtype bfloat16 computes under bf16 autocast, weights staying fp32;
    a float32 plan computes in fp32. (The plan is injected: the policy chooses it.)"""
    import dataclasses
    from dataclasses import replace

    import torch

    from engine.device import DevicePlan
    from engine.generate.precision import inference_precision
    from engine.generate.sampler import GenerationModel

    def plan(dtype: str) -> DevicePlan:
        return DevicePlan("cpu", dtype, None, False, False, False)

    assert inference_precision(plan("float16")).describe() == "float32"
    assert inference_precision(plan("bfloat16")).describe() == \
        "float32 weights, bfloat16 autocast"
    cuda = DevicePlan("cuda", "float16", None, False, False, False)
    assert (inference_precision(cuda).weight_dtype, inference_precision(cuda).autocast_dtype) \
        == ("float16", None)
    if "autocast_dtype" in {f.name for f in dataclasses.fields(DevicePlan)}:
        policy = replace(plan("float32"), autocast_dtype="bfloat16")  # the CPU policy's way
        assert inference_precision(policy).autocast_dtype == "bfloat16"
    seen = {}
    for dtype in ("float32", "bfloat16"):
        pipe = _base_pipe(tiny_models)
        model = GenerationModel(pipe, plan(dtype), inference_precision(plan(dtype)), {})
        conv = pipe.unet.conv_in

        def note(_module, _inputs, out, dtype=dtype) -> None:
            seen.setdefault(dtype, out.dtype)
            # inference_mode would stop autocast caching its bf16 weight copies (10x slower)
            assert not torch.is_inference_mode_enabled() and not torch.is_grad_enabled()

        hook = conv.register_forward_hook(note)
        from engine.generate.recipe import Recipe

        recipe = Recipe(run_id=1, run_kind="custom-diffusion", run_fingerprint="", profile="tiny",
                        model={}, prompt="a photo of a cat", negative_prompt="", seed=0,
                        steps=2, guidance=7.5, width=64, height=64, scheduler="default",
                        layout=None, precision="", device="cpu", app_version="")
        image = model.generate(recipe)
        hook.remove()
        assert image.size == (64, 64) and conv.weight.dtype == torch.float32
    assert seen == {"float32": torch.float32, "bfloat16": torch.bfloat16}


def test_latent_previews_need_no_vae():
    import torch

    from engine.generate.preview import SD_LATENT_RGB, latent_preview

    latents = torch.zeros(1, 4, 8, 8)
    latents[0, 0] = 1.0
    image = latent_preview(latents)
    expected = [round((1 + f) * 127.5) for f in SD_LATENT_RGB[0]]
    assert image.size == (32, 32) and list(image.getpixel((16, 16))) == expected
    assert latent_preview(torch.zeros(1, 16, 8, 8)) is None  # latents it does not know


def test_the_scheduler_choices_are_the_ones_the_sampler_knows():
    from engine.generate.jobs import SCHEDULER_CHOICES
    from engine.generate.sampler import SCHEDULERS

    assert set(SCHEDULER_CHOICES) == {"default", *SCHEDULERS}


# --------------------------------------------------------------------------- the CLI


def test_cli_generates_copies_out_and_makes_a_recipe_again(project, tmp_path, capsys):
    from engine.cli import main

    folder, run_a, _ = project
    out = tmp_path / "out"
    code = main(["-q", "generate", str(folder), "--run", str(run_a), "--prompt", PROMPT,
                 "-n", "2", "--seed", "3", "--steps", "2", "--size", "64", "--device", "cpu",
                 "--box", "mochi", "0", "0", "0.5", "1", "--box", "cup", "0.5", "0", "1", "1",
                 "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["seeds"] == [3, 4] and len(result["copies"]) == 2
    first = Path(result["copies"][0])
    assert first.is_file() and first.name == f"generation-{result['generation_ids'][0]}.png"
    for source in (str(result["generation_ids"][0]), str(first)):
        assert main(["-q", "generate", str(folder), "--recipe", source, "--device", "cpu",
                     "--json"]) == 0
        again = json.loads(capsys.readouterr().out)
        assert np.array_equal(_pixels(folder, again["image_files"][0]),
                              np.asarray(Image.open(first).convert("RGB")))
    assert main(["-q", "generate", str(folder), "--prompt", PROMPT, "--device", "cpu",
                 "--box", "mochi", "0", "0", "1.5", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("mycanvas generate:") and "outside the canvas" in err
    assert len(err.splitlines()) == 1
    assert main(["-q", "generate", str(folder), "--recipe", "12345"]) == 1
    assert "No generation with id 12345" in capsys.readouterr().err
