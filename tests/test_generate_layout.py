"""Layout guidance: each concept's cross-attention is pushed into its box during the guided
steps (DenseDiffusion's modulation) and left alone after them; tiny and full-size models."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
from generate_project import BOXES, PROMPT, make_generate_project, write_synthetic_export


def _recipe(**changes):
    from engine.generate.recipe import LayoutBox, LayoutSpec, Recipe

    boxes = tuple(LayoutBox.from_corners(f"<{name}>", corners) for name, corners in BOXES.items())
    base = Recipe(run_id=1, run_kind="custom-diffusion", run_fingerprint="", profile="tiny",
                  model={}, prompt=PROMPT, negative_prompt="", seed=0, steps=10, guidance=7.5,
                  width=64, height=64, scheduler="default", layout=LayoutSpec(boxes),
                  precision="float32", device="cpu", app_version="test")
    return replace(base, **changes)


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory):
    folder, run_a, _ = make_generate_project(tmp_path_factory.mktemp("layout") / "project")
    yield folder, run_a
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def model(project_dir, tiny_models):
    """A generation model holding a trained run's concepts."""
    from engine.device import DevicePlan
    from engine.generate import load_run_concepts
    from engine.generate.precision import inference_precision
    from engine.generate.sampler import GenerationModel
    from engine.models.loaders import load_text_to_image
    from engine.project import Project

    folder, run_a = project_dir
    plan = DevicePlan("cpu", "float32", None, False, False, False)
    generation = GenerationModel(load_text_to_image(tiny_models["base"]), plan,
                                 inference_precision(plan), {})
    with Project.open(folder) as project:
        generation.use_run(load_run_concepts(project, run_a))
    return generation


# --------------------------------------------------------------------------- the pieces


def test_box_masks_take_the_cells_whose_centres_are_inside():
    from engine.generate.layout_guidance import box_mask, size_term
    from engine.generate.recipe import LayoutBox

    left = box_mask(LayoutBox("<a>", 0.0, 0.0, 0.5, 1.0), 4, 4)
    assert left[:, :2].all() and not left[:, 2:].any()
    speck = box_mask(LayoutBox("<a>", 0.6, 0.6, 0.01, 0.01), 4, 4)
    assert speck.sum() == 1 and speck[2, 2]  # never empty: at least the centre's cell
    assert size_term(0.1) == pytest.approx(0.85) and size_term(0.9) == 0.0


def test_the_modulation_is_densediffusions_on_the_conditional_half():
    import torch

    from engine.generate.layout_guidance import LayoutGuidance, Region
    from engine.generate.recipe import LayoutBox

    box = LayoutBox("<a>", 0.0, 0.0, 0.5, 1.0)
    guidance = LayoutGuidance([("<a>", Region(box, (1, 2)))], strength=2.0,
                              guided_fraction=0.3, latent_size=(4, 4), text_length=6,
                              classifier_free=True)
    guidance.begin_call(800.0, batch=2, total_calls=10)
    assert guidance.active and guidance.guided_steps == 3
    scores = torch.randn(2, 3, 16, 6, generator=torch.Generator().manual_seed(0))
    out = guidance.modulate(scores, 16)
    assert torch.equal(out[0], scores[0])  # the unconditional half is untouched
    cond = scores[1]
    c = 2.0 * 0.8**5 * (1 - 1.5 * 0.5)
    inside = torch.zeros(16, dtype=torch.bool).reshape(4, 4)
    inside[:, :2] = True
    inside = inside.reshape(-1)
    expected = cond.clone()
    row_max, row_min = cond.amax(-1), cond.amin(-1)
    for j in (1, 2):
        expected[:, inside, j] += c * (row_max[:, inside] - cond[:, inside, j])
        expected[:, ~inside, j] -= c * (cond[:, ~inside, j] - row_min[:, ~inside])
    torch.testing.assert_close(out[1], expected)
    for _ in range(3):
        guidance.begin_call(500.0, batch=2, total_calls=10)
    assert not guidance.active  # after 30% of the calls


# --------------------------------------------------------------------------- tiny model


def test_guided_steps_pull_attention_into_the_boxes_and_later_steps_are_untouched(model):
    from engine.generate.layout_guidance import AttentionRecord

    record = AttentionRecord()
    model.generate(_recipe(), record=record)
    calls = record.calls
    assert len(calls) == 11  # PNDM: 10 steps, 11 UNet calls
    guided_calls = math.ceil(0.3 * 11)
    assert [c["guided"] for c in calls] == [True] * guided_calls + [False] * (11 - guided_calls)
    for call in calls:
        assert set(call["tokens"]) == {"<mochi>", "<cup>"}
        for values in call["tokens"].values():
            pairs = list(zip(values["inside"], values["unmodulated"], strict=True))
            if call["guided"]:  # the same logits, modulated: more attention inside the box
                assert all(guided > plain for guided, plain in pairs), call["step"]
            else:  # untouched: the layer's own attention
                assert all(guided == plain for guided, plain in pairs), call["step"]


def test_guidance_raises_the_inside_share_against_unguided_on_the_same_seeds(model):
    from engine.generate.measure import compare_layout_guidance

    recipe = _recipe(steps=6)
    report = compare_layout_guidance(model, recipe, seeds=[0, 1, 2])
    stronger = compare_layout_guidance(
        model, replace(recipe, layout=replace(recipe.layout, strength=4.0)), seeds=[0, 1, 2])
    for token in ("<mochi>", "<cup>"):
        window = report.inside[token]["guided window"]
        strong = stronger.inside[token]["guided window"]["guided"]
        assert strong > window["guided"] > window["unguided"], (token, window, strong)
        assert window["unguided"] == stronger.inside[token]["guided window"]["unguided"]
    assert len(report.seconds["guided"]) == len(report.seconds["unguided"]) == 3
    assert {r["window"] for r in report.rows()} == {"guided window", "all calls"}


def test_the_harness_scores_each_concept_with_the_score_stage(model, project_dir):
    """The per-concept CP-CLIP the harness reports with real weights, wired here through the
    score stage's picture scorer on the tiny test models (whose numbers mean nothing)."""
    from engine.generate.measure import compare_layout_guidance
    from engine.jobs import inline_context
    from engine.score import ScoreParams, picture_scorer

    params = ScoreParams(project=str(project_dir[0]), profile="tiny", device="cpu")
    with picture_scorer(inline_context(), params) as scorer:
        report = compare_layout_guidance(model, _recipe(steps=2), [0],
                                         scorer.concept_cp_clip)
    assert set(report.scores) == {"<mochi>", "<cup>"}
    assert all(set(v) == {"guided", "unguided"} for v in report.scores.values())


def test_processors_come_back_and_unguided_is_plain_diffusers(model):
    import torch

    processors = dict(model.pipe.unet.attn_processors)
    guided = np.asarray(model.generate(_recipe(steps=4)))
    assert dict(model.pipe.unet.attn_processors) == processors  # the same objects
    plain = np.asarray(model.generate(_recipe(steps=4, layout=None)))
    zero = _recipe(steps=4)
    zero = replace(zero, layout=replace(zero.layout, strength=0.0))
    assert np.array_equal(np.asarray(model.generate(zero)), plain)  # strength 0: transparent
    assert not np.array_equal(guided, plain)
    with torch.inference_mode():
        reference = model.pipe(PROMPT, num_inference_steps=4, guidance_scale=7.5, height=64,
                               width=64, generator=torch.Generator().manual_seed(0),
                               output_type="np").images[0]
    assert np.array_equal(np.clip(np.rint(reference * 255), 0, 255).astype(np.uint8), plain)


# --------------------------------------------------------------------------- full size


@pytest.mark.slow
def test_full_size_sd15_architecture_guides_attention_and_loads_concepts(tmp_path):
    """SD 1.5's architecture (random weights) at 256 px: a synthetic export of its shape
    loads, changes the UNet and unloads exactly; guidance pushes attention into the boxes in
    the guided calls and leaves the rest alone."""
    import torch
    from sd15_text2image import build_sd15_pipeline

    from engine.device import DevicePlan
    from engine.generate import read_run_export
    from engine.generate.layout_guidance import AttentionRecord
    from engine.generate.precision import inference_precision
    from engine.generate.sampler import GenerationModel

    pipe = build_sd15_pipeline()
    export = write_synthetic_export(tmp_path / "export", pipe,
                                    {"<mochi>": "cat", "<cup>": "mug"}, "sd15")
    run = read_run_export(export, 1, "custom-diffusion")
    plan = DevicePlan("cpu", "float32", None, False, False, False)
    model = GenerationModel(pipe, plan, inference_precision(plan), {})
    layer = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k
    base_weight = layer.weight
    model.use_run(run)
    assert not torch.equal(layer.weight, base_weight)
    record = AttentionRecord()
    recipe = _recipe(profile="sd15", steps=3, width=256, height=256)
    recipe = replace(recipe, layout=replace(recipe.layout, guided_fraction=0.5))
    image = model.generate(recipe, record=record)
    assert image.size == (256, 256)
    assert [c["guided"] for c in record.calls] == [True, True, False, False]
    for call in record.calls:
        for values in call["tokens"].values():
            pairs = list(zip(values["inside"], values["unmodulated"], strict=True))
            assert len(pairs) == 16  # every cross-attention layer of SD 1.5
            if call["guided"]:
                assert all(g > p for g, p in pairs)
            else:
                assert all(g == p for g, p in pairs)
    model.use_base()
    assert layer.weight is base_weight
