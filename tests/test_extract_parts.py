"""EM extraction's parts: the M-step arithmetic with hand-worked numbers, the attention
capture, prompts, the config, the model's two phases, and the loop's early stop."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from engine.errors import InputError
from engine.extract.config import ExtractConfig


def _pipe(tiny_models):
    from engine.models.loaders import load_text_to_image

    return load_text_to_image(tiny_models["base"])


# --------------------------------------------------------------------------- losses


def test_masked_diffusion_loss_by_hand():
    import torch

    from engine.extract.losses import masked_diffusion_loss

    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [2.0, 2.0]]]])  # [1, 2, 2, 2]
    target = torch.zeros_like(pred)
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # Channel 0: errors 1, 4, 9, 16, inside the mask 1 + 9 = 10; channel 1: 0 + 4 = 4. The
    # mask covers 2 pixels in each of 2 channels: (10 + 4) / 4 = 3.5. (Break-A-Scene's mean
    # of the masked errors over the whole image would be 14 / 8 = 1.75.)
    assert float(masked_diffusion_loss(pred, target, mask)) == pytest.approx(3.5)
    assert float(masked_diffusion_loss(pred[:, :1], target[:, :1], mask)) == pytest.approx(5.0)
    # A soft mask (area-averaged edges): (0.5 * 1 + 1 * 9) / 1.5.
    soft = torch.tensor([[0.5, 0.0], [1.0, 0.0]])
    assert float(masked_diffusion_loss(pred[:, :1], target[:, :1], soft)) == \
        pytest.approx(9.5 / 1.5)
    assert float(masked_diffusion_loss(pred, target, torch.zeros(2, 2))) == 0.0  # not nan


def test_attention_loss_by_hand():
    import torch

    from engine.extract.losses import attention_loss

    maps = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[2.0, 2.0], [0.0, 0.0]]], requires_grad=True)
    masks = torch.tensor([[[0.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]]])
    # Token 0: map / 4 = [.25 .5; .75 1] against [0 0; 1 1]: (.0625 + .25 + .0625 + 0) / 4
    # = .09375. Token 1: map / 2 = [1 1; 0 0] against [1 0; 0 0]: (0 + 1 + 0 + 0) / 4 = .25.
    loss = attention_loss(maps, masks)
    assert float(loss.detach()) == pytest.approx(0.09375 + 0.25)
    loss.backward()
    assert maps.grad is not None and bool(maps.grad.abs().sum() > 0)


def test_union_masks_and_area_resize_by_hand():
    import torch

    from engine.extract.losses import area_resize, union_mask

    masks = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.5], [0.0, 0.0]],
                          [[0.0, 0.0], [0.0, 1.0]]])
    assert torch.equal(union_mask(masks, [0, 1]), torch.tensor([[1.0, 0.5], [0.0, 0.0]]))
    assert torch.equal(union_mask(masks, [2]), masks[2])
    assert torch.equal(union_mask(masks, [2, 0, 1]), torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    # A 4×4 mask whose top-left 3×3 is set, at 2×2: the cells hold 4, 2, 2 and 1 of 4 pixels.
    big = torch.zeros(1, 4, 4, dtype=torch.bool)
    big[0, :3, :3] = True
    assert torch.equal(area_resize(big, 2)[0], torch.tensor([[1.0, 0.5], [0.5, 0.25]]))


def test_subset_sampling_is_non_empty_uniform_per_size_and_repeatable():
    import torch

    from engine.extract.losses import sample_subset

    gen = torch.Generator().manual_seed(0)
    draws = [tuple(sample_subset(3, gen)) for _ in range(9000)]
    assert all(1 <= len(d) <= 3 and len(set(d)) == len(d) for d in draws)
    sizes = Counter(len(d) for d in draws)
    assert all(abs(sizes[k] / 9000 - 1 / 3) < 0.02 for k in (1, 2, 3))  # each size 1/3
    chosen = Counter(frozenset(d) for d in draws)
    assert len(chosen) == 7  # every non-empty subset occurs
    for subset, count in chosen.items():  # singletons and pairs 1/9 each, the triple 1/3
        expected = 1 / 3 if len(subset) == 3 else 1 / 9
        assert abs(count / 9000 - expected) < 0.015, (subset, count)
    assert {(0, 1), (1, 0)} <= set(draws)  # the prompt order is random too
    again = torch.Generator().manual_seed(0)
    assert [tuple(sample_subset(3, again)) for _ in range(50)] == draws[:50]
    assert sample_subset(1, gen) == [0]


# --------------------------------------------------------------------------- masks


def test_mask_exclusivity_by_hand():
    from engine.extract.mask_ops import exclusive_labels, labels_to_masks, masks_to_labels

    scores = np.array([[[0.9, 0.6], [0.2, 0.5]], [[0.8, 0.7], [0.1, 0.5]]])
    # (0,0): 0.9 wins; (0,1): 0.7 wins; (1,0): best 0.2 < 0.5, nobody; (1,1): a tie at the
    # threshold goes to the lower index.
    labels = exclusive_labels(scores, 0.5)
    assert labels.tolist() == [[1, 2], [0, 1]]
    valid = np.array([[False, True], [True, True]])
    assert exclusive_labels(scores, 0.5, valid).tolist() == [[0, 2], [0, 1]]
    masks = labels_to_masks(labels, 2)
    assert masks.tolist() == [[[True, False], [False, True]], [[False, True], [False, False]]]
    assert not (masks[0] & masks[1]).any()
    # Overlapping given masks: the smaller one keeps the contested pixel.
    big = np.array([[True, True], [True, False]])
    small = np.array([[False, True], [False, False]])
    assert masks_to_labels(np.stack([big, small])).tolist() == [[1, 2], [1, 0]]


def test_cleaning_keeps_big_parts_and_fills_holes_only_with_free_pixels():
    from engine.extract.mask_ops import clean_labels

    labels = np.zeros((12, 12), np.int32)
    labels[1:6, 1:11] = 1  # concept 1: a bar ...
    labels[8:11, 1:6] = 1  # ... and a second part 15/50 of it (kept: an occluded half)
    labels[10, 10] = 1  # a speck (dropped)
    labels[3, 3] = 0  # a hole: closed
    labels[3, 7] = 2  # concept 2 seen through a hole of concept 1: it stays concept 2
    out = clean_labels(labels, 2)
    assert out[3, 3] == 1 and out[3, 7] == 2 and out[10, 10] == 0
    assert (out[8:11, 1:6] == 1).all()


def test_blending_with_the_previous_mask_is_a_hysteresis():
    """With blend 0.7 and threshold 0.5 a pixel stays in its mask while its (normalised)
    attention is above 0.29 and joins where it reaches 0.71."""
    from engine.extract.estep import MaskSettings, estimate_masks

    side = 8
    image = np.zeros((side, side, 3), np.uint8)
    valid = np.ones((side, side), bool)
    settings = MaskSettings(threshold=0.5, blend=0.7, crf_iterations=0)
    attention = np.zeros((1, side, side), np.float32)
    attention[0, :, 0:2], attention[0, :, 2:4], attention[0, :, 4:6] = 1.0, 0.3, 0.28
    previous = np.zeros((1, side, side), bool)
    previous[0, :, 0:6] = True
    stays = estimate_masks(attention, image, valid, settings, previous=previous)[0]
    assert stays[:, :4].all() and not stays[:, 4:].any()  # 0.51 stays in, 0.496 drops out
    attention[0, :, 2:4], attention[0, :, 4:6] = 0.72, 0.7
    previous[0, :, 2:] = False
    joins = estimate_masks(attention, image, valid, settings, previous=previous)[0]
    assert joins[:, :4].all() and not joins[:, 4:].any()  # 0.504 joins, 0.49 does not


def test_frame_letterboxes_the_photo_and_back():
    from PIL import Image

    from engine.extract.mask_ops import Frame

    frame = Frame(200, 100, 64)
    assert frame.scale == pytest.approx(0.32) and frame.box == (0, 16, 64, 48)
    assert frame.box_to_square((100, 50, 200, 100)) == pytest.approx((32, 32, 64, 48))
    mask = np.zeros((100, 200), bool)
    mask[:, 100:] = True
    square = frame.mask_to_square(mask)
    assert square.shape == (64, 64) and not square[:16].any() and not square[48:].any()
    assert frame.crop(square).shape == (32, 64) and frame.crop(square)[:, 32:].all()
    rgb = Image.new("RGB", (200, 100), (10, 200, 30))
    pixels = frame.image(rgb)
    assert pixels.shape == (64, 64, 3) and (pixels == (10, 200, 30)).all()  # edges repeated
    assert frame.valid().sum() == 64 * 32


# --------------------------------------------------------------------------- prompts, config


def test_prompts_know_where_each_concept_sits(tiny_models):
    from engine.extract.prompts import class_word_prompt, concept_prompt
    from engine.models.tokenizer import load_clip_tokenizer
    from engine.train import ConceptRef

    tok = load_clip_tokenizer(tiny_models["base"] / "tokenizer")
    tok.add_tokens(["<mochi>", "<rex>", "<pip>"])
    refs = [ConceptRef("<mochi>", "cat"), ConceptRef("<rex>", "dog"),
            ConceptRef("<pip>", "teddy bear")]
    for n in (1, 2, 3):
        prompt = concept_prompt(tok, refs[:n])
        whole = tok(prompt.text, padding="max_length", max_length=77).input_ids
        assert prompt.ids == whole, prompt.text
        assert [[prompt.ids[p] for p in span] for span in prompt.spans] == [
            [tok.convert_tokens_to_ids(r.token)] for r in refs[:n]]
    assert concept_prompt(tok, refs).text == \
        "a photo of <mochi> cat, <rex> dog and <pip> teddy bear"
    words = class_word_prompt(tok, ["cat", "owl", "teddy bear"])
    assert words.text == "a photo of a cat, an owl and a teddy bear"
    assert words.ids == tok(words.text, padding="max_length", max_length=77).input_ids
    assert [tok.decode([words.ids[p] for p in span]) for span in words.spans] == [
        "cat", "owl", "teddy bear"]
    plural = class_word_prompt(tok, ["cat", "sunglasses"])  # no article, no double space
    assert plural.text == "a photo of a cat and sunglasses"
    assert plural.ids == tok(plural.text, padding="max_length", max_length=77).input_ids
    with pytest.raises(InputError, match="longer than the text encoder"):
        class_word_prompt(tok, ["very " * 30 + "long"] * 3)


def test_config_validates_round_trips_and_spreads_the_iterations():
    cfg = ExtractConfig(steps=10, iterations=4)
    assert cfg.iteration_ends() == [3, 5, 8, 10] and cfg.phase_two_from == 5
    assert ExtractConfig().iteration_ends() == [100, 200, 300, 400]
    assert ExtractConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert ExtractConfig(steps=10, phase_one_steps=0).phase_two_from == 0
    with pytest.raises(InputError, match="iterations must be a whole number from 1 to 10"):
        ExtractConfig(steps=10, iterations=11)
    with pytest.raises(InputError, match=r"Unknown extraction setting.*stepz"):
        ExtractConfig.from_dict({"stepz": 3})
    with pytest.raises(InputError, match="estep_timesteps"):
        ExtractConfig(estep_timesteps=(1200,))
    with pytest.raises(InputError, match="resolution must be a multiple of 64"):
        ExtractConfig(resolution=96)


# --------------------------------------------------------------------------- attention


def _sd15_layout_unet():
    """SD 1.5's block layout (4 levels, cross-attention in the first three down blocks and
    last three up blocks, 2 layers per block) with tiny channels."""
    import diffusers
    import torch

    torch.manual_seed(0)
    return diffusers.UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(32, 32, 64, 64), cross_attention_dim=32, attention_head_dim=8,
        norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                          "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                        "CrossAttnUpBlock2D"))


def test_the_chosen_layers_are_break_a_scenes_five_on_sd15_and_their_match_on_tiny(
        tiny_models):
    from engine.extract.attention import attention_layers

    names, level = attention_layers(_sd15_layout_unet())
    block = ".transformer_blocks.0.attn2.processor"
    assert names == [f"down_blocks.2.attentions.{i}{block}" for i in (0, 1)] + [
        f"up_blocks.1.attentions.{i}{block}" for i in (0, 1, 2)]
    assert 64 >> level == 16  # 16×16 maps at 512 px (64×64 latents)
    names, level = attention_layers(_pipe(tiny_models).unet)
    assert names == [f"down_blocks.1.attentions.0{block}"] + [
        f"up_blocks.0.attentions.{i}{block}" for i in (0, 1)]
    assert 8 >> level == 4  # 4×4 maps at 64 px (8×8 latents)


def test_capture_records_with_gradients_and_restores_the_processors(tiny_models):
    import torch
    from diffusers.models.attention_processor import AttnProcessor

    from engine.extract.attention import RecordingAttnProcessor, capture_attention

    unet = _pipe(tiny_models).unet.eval()
    unet.requires_grad_(False)
    before = dict(unet.attn_processors)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    states = torch.randn(2, 77, 32, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([500, 500])
    with torch.no_grad():
        plain = unet(latents, t, states).sample
    with capture_attention(unet) as capture:
        installed = unet.attn_processors
        recorders = [n for n, p in installed.items() if isinstance(p, RecordingAttnProcessor)]
        assert recorders == capture.layers and len(recorders) == 3
        with torch.no_grad():  # not recording: the original processors, bit for bit
            assert torch.equal(unet(latents, t, states).sample, plain)
        assert capture.store.maps == []
        states.requires_grad_(True)
        with capture.recording():
            recorded = unet(latents, t, states).sample
        assert len(capture.store.maps) == 3
        assert all(m.shape == (2, 16, 77) for m in capture.store.maps)  # 4×4 queries
        assert all(torch.allclose(m.sum(-1), torch.ones(2, 16)) for m in capture.store.maps)
        maps = capture.token_maps([[1], [2, 3]])
        assert maps.shape == (2, 2, 4, 4)
        expected = torch.stack(capture.store.maps).mean(0)[:, :, 2:4].mean(-1).reshape(2, 4, 4)
        assert torch.allclose(maps[:, 1], expected)
        maps.sum().backward()  # gradients reach the text states through the maps
        assert states.grad is not None and bool(states.grad.abs().sum() > 0)
    assert unet.attn_processors == before  # the very same processor objects are back
    # The classic path's arithmetic is diffusers' own AttnProcessor (SDPA agrees to rounding).
    unet.set_attn_processor(AttnProcessor())
    with torch.no_grad():
        classic = unet(latents, t, states).sample
    torch.testing.assert_close(recorded.detach(), classic, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(classic, plain, rtol=1e-4, atol=1e-5)


def test_capture_puts_the_processors_back_after_an_error(tiny_models):
    from engine.extract.attention import capture_attention

    unet = _pipe(tiny_models).unet
    before = dict(unet.attn_processors)
    with pytest.raises(RuntimeError, match="boom"), capture_attention(unet):
        raise RuntimeError("boom")
    assert unet.attn_processors == before
    with pytest.raises(InputError, match="no attention layer"), \
            capture_attention(unet, ["nowhere.processor"]):
        pass


# --------------------------------------------------------------------------- the model


def test_phase_one_trains_only_the_token_rows_and_phase_two_adds_the_kv(tiny_models):
    import torch

    from engine.extract.attention import capture_attention
    from engine.extract.model import ExtractionModel
    from engine.train import ConceptRef, plan_precision

    cfg = ExtractConfig(steps=4, iterations=1, resolution=64, token_learning_rate=1e-2,
                        weights_learning_rate=1e-2)
    pipe = _pipe(tiny_models)
    model = ExtractionModel(pipe, [ConceptRef("<mochi>", "cat"), ConceptRef("<rex>", "dog")],
                            plan_precision("cpu", "auto"), cfg)
    rng = np.random.default_rng(0)
    model.encode_photo(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    masks = np.zeros((2, 64, 64), bool)
    masks[0, :, :32], masks[1, :, 32:] = True, True
    matrix = model.added.embedding.base.weight.detach().clone()
    kv = {n: layer.weight.detach().clone() for n, layer in model.kv_layers.items()}
    rows = model.added.rows.detach().clone()
    with capture_attention(model.unet) as capture:
        model.set_masks(masks, model.latent_side >> capture.level)
        records = [model.train_step(step, capture) for step in range(2)]
        assert [r["phase"] for r in records] == [1.0, 1.0]
        assert all(n.endswith("attn2.to_k") or n.endswith("attn2.to_v") for n in kv)
        assert all(torch.equal(layer.weight, kv[n]) for n, layer in model.kv_layers.items())
        assert all(layer.weight.grad is None for layer in model.kv_layers.values())
        assert not torch.equal(model.added.rows, rows)
        records += [model.train_step(step, capture) for step in range(2, 4)]
    assert [r["phase"] for r in records[2:]] == [2.0, 2.0]
    assert any(not torch.equal(layer.weight, kv[n]) for n, layer in model.kv_layers.items())
    assert torch.equal(model.added.embedding.base.weight, matrix)  # the matrix never moves
    assert all(np.isfinite(r["loss"]) and r["attention_loss"] > 0 for r in records)
    assert model.phase_of(2) == 1 and model.phase_of(3) == 2


# --------------------------------------------------------------------------- the loop


class _Trainer:
    def __init__(self, stop_after: int | None) -> None:
        self.steps: list[int] = []
        self.stop_after = stop_after

    def train_step(self, step: int) -> dict[str, float]:
        self.steps.append(step)
        return {"loss": 1.0}

    def save_state(self, step: int):
        import torch

        from engine.train import TrainerState

        return TrainerState({"n": torch.tensor([len(self.steps)])}, {"state": {}}, {})

    def load_state(self, saved, where: Path) -> None:
        pass

    def preview(self, step: int):
        raise AssertionError("no previews here")

    def go_leaner(self):
        return None

    def stop(self, done: int) -> bool:
        return self.stop_after is not None and done >= self.stop_after


def test_the_loop_stops_early_when_told_and_checkpoints_there(tmp_path):
    from engine.jobs import inline_context
    from engine.train import LoopSchedule, RunPaths, run_loop

    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    trainer = _Trainer(stop_after=5)
    run_loop(inline_context(), trainer, LoopSchedule(12, 4, 3, 0), paths, stop=trainer.stop)
    assert trainer.steps == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in paths.checkpoints.iterdir()) == ["step-0000004",
                                                                   "step-0000005"]
    again = _Trainer(stop_after=5)  # resumed at the stop: nothing more to do
    assert run_loop(inline_context(), again, LoopSchedule(12, 4, 3, 0), paths,
                    stop=again.stop) == 5
    assert again.steps == []
