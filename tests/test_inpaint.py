"""Background repainting: seam masks, exact paste-back, settings, OOM retry, cancel."""

from __future__ import annotations

import types

import numpy as np
import pytest
from test_compose import CUTOUTS, LAYOUT

from engine.dataset.compose import compose
from engine.dataset.inpaint import (
    Inpainter,
    InpaintSettings,
    load_inpainter,
    paste_back,
    seam_masks,
)
from engine.device import DevicePlan
from engine.errors import Cancelled, InputError, MyCanvasError
from engine.jobs.warm_cache import ModelKey, WarmCache
from engine.masks import erode
from engine.project import Layout, LayoutObject

CPU = DevicePlan(device="cpu", dtype="float32", free_memory=None, attention_slicing=False,
                 vae_tiling=False, cpu_offload=False)


def test_seam_masks_repaint_into_the_objects_and_keep_their_middle_exactly():
    comp = compose(LAYOUT, CUTOUTS, 128, 0)
    settings = InpaintSettings()
    grow, blur = settings.seam_pixels(128)
    assert (grow, blur) == (1, 1)
    masks = seam_masks(comp.keep_mask, settings)
    repaint = np.asarray(masks.repaint)
    assert masks.repaint.mode == "L" and repaint.shape == (128, 128)
    assert (masks.paste_alpha[erode(comp.keep_mask, grow + 3 * blur)] == 255).all()
    assert (masks.paste_alpha[~comp.keep_mask] < 255).all()  # the seam ring is repainted
    assert (repaint[~comp.keep_mask] >= 128).all()  # every background pixel is repainted
    wide = seam_masks(comp.keep_mask, InpaintSettings(seam_grow=0.05, seam_blur=0.02))
    assert (wide.paste_alpha == 255).sum() < (masks.paste_alpha == 255).sum()
    assert InpaintSettings().seam_pixels(1024) == (6, 8)


def test_paste_back_is_exact_where_alpha_is_full_and_blends_between():
    rng = np.random.default_rng(0)
    composite, painted = (rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(2))
    alpha = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    alpha[:4], alpha[-4:] = 255, 0
    out = paste_back(composite, painted, alpha)
    assert np.array_equal(out[:4], composite[:4]) and np.array_equal(out[-4:], painted[-4:])
    low = np.minimum(composite, painted)[4:-4]
    high = np.maximum(composite, painted)[4:-4]
    assert ((out[4:-4] >= low) & (out[4:-4] <= high)).all()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"steps": 0}, "--steps"), ({"steps": 2.5}, "--steps"), ({"strength": 0.0}, "above 0"),
    ({"strength": 1.5}, "--strength"), ({"guidance": float("nan")}, "--guidance"),
    ({"seam_blur": -1}, "--seam_blur"),
])
def test_settings_are_validated(kwargs, message):
    with pytest.raises(InputError, match=message):
        InpaintSettings(**kwargs)


def test_settings_defaults_follow_gen4gen_with_fewer_steps_on_cpu():
    settings = InpaintSettings()
    assert (settings.guidance, settings.strength) == (6.0, 0.9)
    assert settings.steps_for("cuda") == 60 and settings.steps_for("cpu") == 20
    assert settings.denoising_steps("cpu") == 18
    assert InpaintSettings(steps=7).to_dict("cpu")["steps"] == 7


def tiny_inpainter(ctx=None):
    from engine.dataset.jobs import BuildDatasetParams
    from engine.jobs import inline_context
    from engine.jobs.stage_setup import resolve_stage

    setup = resolve_stage(BuildDatasetParams(project="unused", count=1, profile="tiny",
                                             device="cpu", overrides={}))
    return load_inpainter(ctx or inline_context(), setup)


def test_tiny_pipeline_keeps_the_objects_pixels_exactly(tiny_models):
    from engine.jobs import inline_context

    ctx = inline_context()
    inpainter = tiny_inpainter(ctx)
    assert tiny_inpainter(ctx) is inpainter  # warm in the worker's cache
    for size in (64, 128):
        comp = compose(LAYOUT, CUTOUTS, size, 5)
        steps: list[tuple[int, int]] = []
        result = inpainter.paint(comp, "a kitchen", InpaintSettings(steps=4), 11,
                                 lambda i, n, seen=steps: seen.append((i, n)))
        assert [i for i, _ in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 3
        final, painted = np.asarray(result.image), np.asarray(result.painted)
        composite = np.asarray(comp.image)
        assert final.shape == (size, size, 3) and final.dtype == np.uint8
        exact = result.paste_alpha == 255
        grow, blur = InpaintSettings().seam_pixels(size)
        assert exact[erode(comp.keep_mask, grow + 3 * blur)].all()
        assert exact.sum() > 0 and np.array_equal(final[exact], composite[exact])
        background = result.paste_alpha == 0
        assert np.array_equal(final[background], painted[background])
        assert not np.array_equal(final[background], composite[background])  # repainted
    again = inpainter.paint(comp, "a kitchen", InpaintSettings(steps=4), 11)
    assert np.array_equal(np.asarray(again.image), final)  # seeded


def test_cancel_from_a_step_stops_the_pipeline(tiny_models):
    inpainter = tiny_inpainter()
    comp = compose(LAYOUT, CUTOUTS, 64, 0)

    def cancel_at_two(step: int, _total: int) -> None:
        if step == 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        inpainter.paint(comp, "x", InpaintSettings(steps=6), 0, cancel_at_two)


class FakePipe:
    """A pipeline that runs out of memory until attention slicing is on."""

    vae_scale_factor = 8

    def __init__(self, output: np.ndarray) -> None:
        self.output = output
        self.vae = types.SimpleNamespace(enable_tiling=lambda: None)
        self.slicing = False
        self.calls = 0

    def to(self, _device):
        return self

    def enable_attention_slicing(self):
        self.slicing = True

    def __call__(self, **kwargs):
        self.calls += 1
        if not self.slicing:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        kwargs["callback_on_step_end"](self, 0, 999, {})
        return types.SimpleNamespace(images=self.output)


def test_out_of_memory_is_retried_once_in_lean_mode_and_stays_lean():
    comp = compose(Layout(id=1, scene="", objects=(LayoutObject(1, 0.2, 0.2, 0.5, 0.5),)),
                   {1: CUTOUTS[1]}, 64, 0)
    pipe = FakePipe(np.full((1, 64, 64, 3), 0.5, dtype=np.float32))
    logs: list[str] = []
    # Two warm models sit in the worker's cache: the retry must not run beside them.
    models = WarmCache(budget=lambda _device, _held: None, measure=lambda _m: 1)
    for role in ("clip", "segmenter"):
        models.load(ModelKey(role, "tiny", "cpu"), object)
    inpainter = Inpainter(pipe, CPU, models, logs.append)
    result = inpainter.paint(comp, "x", InpaintSettings(steps=2), 0)
    assert pipe.calls == 2 and inpainter.plan.lean and inpainter.plan.attention_slicing
    assert models.loaded_keys() == [] and [k.role for k in models.evicted] == ["clip",
                                                                              "segmenter"]
    assert "unloaded 2 warm model(s)" in logs[0]
    assert "retrying once in lean mode" in logs[1]
    assert (np.asarray(result.painted) == 128).all()
    inpainter.paint(comp, "x", InpaintSettings(steps=2), 0)
    assert pipe.calls == 3  # the next item starts lean


def test_invalid_output_is_a_clear_error():
    comp = compose(Layout(id=1, scene="", objects=(LayoutObject(1, 0.2, 0.2, 0.5, 0.5),)),
                   {1: CUTOUTS[1]}, 64, 0)
    pipe = FakePipe(np.full((1, 64, 64, 3), np.nan, dtype=np.float32))
    pipe.slicing = True
    with pytest.raises(MyCanvasError, match="NaN"):
        Inpainter(pipe, CPU).paint(comp, "x", InpaintSettings(steps=2), 0)
    with pytest.raises(InputError, match="leave no step"):
        Inpainter(pipe, CPU).paint(comp, "x", InpaintSettings(steps=1, strength=0.5), 0)
