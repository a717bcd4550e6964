"""Equal to upstream: every model-facing stage, on the sd15 profile's rehearsed download
(tests/hf_rehearsal.py: full-size random weights, the published configs), against the upstream
library's own loading and pipeline with the same weights and seed. Each test prints the largest
difference and bounds it in float32. Small sizes (128 px pictures) keep each in seconds to a
minute on a CPU; run under `flock /tmp/mycanvas-heavy.lock`."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from hf_rehearsal import PROFILE, using_rehearsal  # isort: skip

pytestmark = pytest.mark.slow
SIDE = 128  # pixels of the compared pictures (16 x 16 latents)
STEPS = 3
TOLERANCE = 1e-5


def repo(role: str) -> str:
    from engine.models.profiles import get_profile

    name = get_profile(PROFILE).role(role).repo
    assert name
    return name


def weights_as_ours(role: str) -> dict[str, Any]:
    """How upstream loads the same weight files we load: the variant the profile downloads
    (SD 1.5's half-precision files), up-cast to float32 as our loader does on a CPU."""
    from engine.models.profiles import get_profile

    return {"variant": get_profile(PROFILE).role(role).variant, "torch_dtype": torch.float32}


def role_path(role: str) -> Path:
    from engine.models.profiles import get_profile, resolve_role

    return resolve_role(get_profile(PROFILE), role)


def hub_cache() -> str:
    """The rehearsal cache, given to upstream loaders explicitly: a library that read the
    cache's location when it was imported (earlier in the session) would look elsewhere."""
    import huggingface_hub.constants as hf_constants

    return str(hf_constants.HF_HUB_CACHE)


def report(what: str, diff: float, bound: float = TOLERANCE) -> None:
    print(f"\n{what}: largest difference {diff:.3g} (bound {bound:g})")
    assert diff <= bound, f"{what}: {diff:.3g} > {bound:g}"


def free() -> None:
    gc.collect()


def photo(name: str = "chelsea", side: int | None = None) -> Image.Image:
    from skimage import data

    image = Image.fromarray(getattr(data, name)())
    return image.resize((side, side), Image.Resampling.BICUBIC) if side else image


class FloatCapture:
    """Records the float pictures a module's `_to_uint8` is given (our pipelines' output
    before it is stored as 8 bits)."""

    def __init__(self, module: Any, monkeypatch: Any) -> None:
        self.images: list[np.ndarray] = []
        real = module._to_uint8

        def capture(images: Any, *args: Any) -> Any:
            self.images.append(np.asarray(images[0], dtype=np.float32).copy())
            return real(images, *args)

        monkeypatch.setattr(module, "_to_uint8", capture)


# --------------------------------------------------------------------------- generation


def _recipe(prompt: str, run: Any = None) -> Any:
    from engine.generate import Recipe

    return Recipe(run_id=run.run_id if run else 0, run_kind="custom-diffusion",
                  run_fingerprint=run.fingerprint if run else "", profile=PROFILE, model={},
                  prompt=prompt, negative_prompt="", seed=7, steps=STEPS, guidance=7.5,
                  width=SIDE, height=SIDE, scheduler="default", layout=None,
                  precision="float32", device="cpu", app_version="test")


def _our_picture(prompt: str, monkeypatch: Any, run: Any = None) -> np.ndarray:
    import engine.generate.sampler as sampler
    from engine.device import plan_device
    from engine.generate.precision import inference_precision
    from engine.models.loaders import load_text_to_image

    plan = plan_device("cpu", precision="float32")
    model = sampler.GenerationModel(load_text_to_image(role_path("base")), plan,
                                    inference_precision(plan), {})
    if run is not None:
        model.use_run(run)
    floats = FloatCapture(sampler, monkeypatch)
    model.generate(_recipe(prompt, run))
    del model
    free()
    (image,) = floats.images
    return image


def _upstream_sd15() -> Any:
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(
        repo("base"), local_files_only=True, safety_checker=None, requires_safety_checker=False,
        cache_dir=hub_cache(), **weights_as_ours("base"))


def _upstream_picture(pipe: Any, prompt: str) -> np.ndarray:
    generator = torch.Generator("cpu").manual_seed(7)
    with torch.no_grad():
        return pipe(prompt, height=SIDE, width=SIDE, num_inference_steps=STEPS,
                    guidance_scale=7.5, generator=generator, output_type="np").images[0]


def test_generation_without_concepts_equals_stable_diffusion_pipeline(sd15_cache, monkeypatch):
    prompt = "a photo of a cat on a sofa"
    ours = _our_picture(prompt, monkeypatch)
    pipe = _upstream_sd15()
    theirs = _upstream_picture(pipe, prompt)
    del pipe
    free()
    assert ours.shape == theirs.shape == (SIDE, SIDE, 3)
    report("generation vs StableDiffusionPipeline", float(np.abs(ours - theirs).max()))


@pytest.fixture(scope="module")
def custom_diffusion_export(rehearsal_hub, tmp_path_factory) -> Path:
    """A Custom Diffusion export made by our trainer's exporter from the rehearsal's base
    model, its k/v weights and token row moved well away from the base (so a loader that
    dropped them would show)."""
    from engine.models.loaders import load_text_to_image
    from engine.train.config import TrainConfig
    from engine.train.custom_diffusion import CustomDiffusionModel
    from engine.train.export import export_concepts
    from engine.train.precision import Precision

    with pytest.MonkeyPatch.context() as mp, using_rehearsal(rehearsal_hub, mp):
        pipe = load_text_to_image(role_path("base"))
    model = CustomDiffusionModel(pipe, ["<mochi>"], ["cat"],
                                 Precision(torch.device("cpu"), torch.float32, None),
                                 TrainConfig())
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for layer in model.kv_layers.values():
            w = layer.weight
            w.add_(torch.randn(w.shape, generator=generator) * w.std() * 0.5)
        model.added.rows.copy_(torch.randn(model.added.rows.shape, generator=generator) * 0.3)
    out = export_concepts(model, tmp_path_factory.mktemp("cd-export") / "export", {
        "concepts": [{"name": "Mochi", "token": "<mochi>", "class_word": "cat"}],
        "base_model": {"profile": PROFILE}, "run_id": 1, "kind": "custom-diffusion"})
    del model, pipe
    free()
    return out


def test_generation_with_a_run_equals_upstream_custom_diffusion_loading(
        sd15_cache, custom_diffusion_export, monkeypatch):
    from engine.generate import read_run_export
    from engine.train import WEIGHTS_NAME

    run = read_run_export(custom_diffusion_export, run_id=1)
    prompt = "a photo of <mochi> cat on a sofa"
    ours = _our_picture(prompt, monkeypatch, run)
    base = _our_picture(prompt.replace("<mochi> ", ""), monkeypatch)
    pipe = _upstream_sd15()
    pipe.unet.load_attn_procs(str(run.export_dir), weight_name=WEIGHTS_NAME, _pipeline=pipe)
    for token, path in run.token_files.items():
        pipe.load_textual_inversion(str(path), token=token)
    theirs = _upstream_picture(pipe, prompt)
    del pipe
    free()
    moved = float(np.abs(ours - base).max())
    print(f"\nthe run's concepts move the picture by up to {moved:.3g}")
    assert moved > 1e-2  # the comparison below could see a loader that dropped them
    report("generation with a run vs load_attn_procs + load_textual_inversion",
           float(np.abs(ours - theirs).max()))


def test_one_training_step_loss_equals_the_custom_diffusion_example(sd15_cache):
    """Our loss of one micro-batch vs train_custom_diffusion.py's formula on the same batch,
    noise and timesteps (the draws replayed from the same generator, in our order)."""
    import torch.nn.functional as F
    from diffusers import DDPMScheduler

    from engine.models.loaders import load_text_to_image
    from engine.train.config import TrainConfig
    from engine.train.custom_diffusion import CustomDiffusionModel
    from engine.train.data import Batch
    from engine.train.precision import Precision

    pipe = load_text_to_image(role_path("base"))
    model = CustomDiffusionModel(pipe, ["<mochi>"], ["cat"],
                                 Precision(torch.device("cpu"), torch.float32, None),
                                 TrainConfig())
    side = SIDE // 8
    rng = torch.Generator().manual_seed(1)
    mean = torch.randn((2, 4, side, side), generator=rng)
    std = torch.rand((2, 4, side, side), generator=rng) * 0.1
    ids = model.tokenize(["a photo of <mochi> cat", "<mochi> cat on a beach"])
    ours, _ = model.loss(Batch(mean, std, None, ids), torch.Generator().manual_seed(5))

    # The example: latents * scaling factor, epsilon target, F.mse_loss(reduction="mean").
    scheduler = DDPMScheduler.from_pretrained(repo("base"), subfolder="scheduler",
                                              local_files_only=True, cache_dir=hub_cache())
    g = torch.Generator().manual_seed(5)
    latents = (mean + std * torch.randn(mean.shape, generator=g)) * \
        pipe.vae.config.scaling_factor
    noise = torch.randn(latents.shape, generator=g)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (2,), generator=g)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    with torch.no_grad():
        states = pipe.text_encoder(ids)[0]
        pred = pipe.unet(noisy, timesteps, states).sample
    theirs = F.mse_loss(pred.float(), noise.float(), reduction="mean")
    print(f"\nloss ours {float(ours):.6f}, the example's {float(theirs):.6f}")
    report("one training step's loss vs the Custom Diffusion example",
           abs(float(ours) - float(theirs)))
    del model, pipe
    free()


# --------------------------------------------------------------------------- dataset


def test_dataset_inpainting_equals_stable_diffusion_inpaint_pipeline(sd15_cache, monkeypatch):
    from diffusers import StableDiffusionInpaintPipeline

    import engine.dataset.inpaint as inpaint
    from engine.dataset.compose import Composition
    from engine.device import plan_device
    from engine.models.loaders import load_inpaint

    keep = np.zeros((SIDE, SIDE), dtype=bool)
    keep[32:96, 40:100] = True
    composition = Composition(image=photo("coffee", SIDE), concept_masks={1: keep},
                              placed_area={1: int(keep.sum())}, keep_mask=keep)
    settings = inpaint.InpaintSettings(steps=STEPS + 1)
    prompt = "a mug on a kitchen table"
    floats = FloatCapture(inpaint, monkeypatch)
    inpainter = inpaint.Inpainter(load_inpaint(role_path("inpaint")),
                                  plan_device("cpu", precision="float32"))
    inpainter.paint(composition, prompt, settings, seed=4)
    (ours,) = floats.images
    del inpainter
    free()
    pipe = StableDiffusionInpaintPipeline.from_pretrained(
        repo("inpaint"), local_files_only=True, safety_checker=None,
        requires_safety_checker=False, cache_dir=hub_cache(), **weights_as_ours("inpaint"))
    with torch.no_grad():
        theirs = pipe(prompt=prompt, negative_prompt=settings.negative_prompt,
                      image=composition.image, mask_image=inpaint.seam_masks(keep, settings)
                      .repaint, height=SIDE, width=SIDE, strength=settings.strength,
                      guidance_scale=settings.guidance, num_inference_steps=settings.steps,
                      generator=torch.Generator("cpu").manual_seed(4),
                      output_type="np").images[0]
    del pipe
    free()
    report("dataset inpainting vs StableDiffusionInpaintPipeline",
           float(np.abs(ours - theirs).max()))


# --------------------------------------------------------------------------- segmentation


def test_sam_masks_equal_segment_anythings_predictor(sd15_cache):
    from segment_anything import SamPredictor, sam_model_registry

    from engine.jobs.stage_setup import resolve_stage
    from engine.segment import SegmentParams
    from engine.segment.sam import SamSegmenter, load_segmenter_for

    image = np.asarray(photo("coffee"))
    point, box = (300.0, 200.0), (70.0, 10.0, 485.0, 395.0)
    setup = resolve_stage(SegmentParams(project="unused", profile=PROFILE, device="cpu"))
    ours = load_segmenter_for(setup, "sam")
    assert isinstance(ours, SamSegmenter) and not ours.test_model
    ours.embed(image, "coffee")
    mask, score, low = ours.prompted(image, "coffee", [point], [1], box)
    del ours
    free()
    # Upstream's own loading of the repository's checkpoint and its predictor.
    sam = sam_model_registry["vit_b"](checkpoint=str(role_path("segmenter")))
    predictor = SamPredictor(sam)
    predictor.set_image(image)
    masks, scores, lows = predictor.predict(point_coords=np.array([point]),
                                            point_labels=np.array([1]), box=np.array(box),
                                            multimask_output=False, return_logits=True)
    del predictor, sam
    free()
    print(f"\nSAM score ours {score:.6f}, SamPredictor {float(scores[0]):.6f}")
    report("SAM low-res mask logits vs SamPredictor", float(np.abs(low - lows[0]).max()))
    report("SAM predicted IoU vs SamPredictor", abs(float(score) - float(scores[0])))
    agree = float(np.mean((mask > 0.5) == (masks[0] > 0)))
    print(f"SAM full-size masks agree on {agree:.4%} of the pixels")
    assert agree > 0.999


# --------------------------------------------------------------------------- scoring


def test_clip_embeddings_equal_open_clips_own(sd15_cache):
    import open_clip

    from engine.models.loaders import load_clip
    from engine.score.embedding import ClipEmbedder

    images = [photo("chelsea"), photo("coffee"), photo("rocket")]
    texts = ["a photo of a cat", "a red mug", "a rocket on its launch pad"]
    ours = ClipEmbedder(*load_clip(role_path("clip")))
    our_images, our_texts = ours.images(images), ours.texts(texts)
    del ours
    free()
    name = f"hf-hub:{repo('clip')}"
    model, _, preprocess = open_clip.create_model_and_transforms(name, cache_dir=hub_cache())
    tokenizer = open_clip.get_tokenizer(name, cache_dir=hub_cache())
    model.eval()
    with torch.no_grad():
        image_rows = model.encode_image(torch.stack([preprocess(im) for im in images]))
        text_rows = model.encode_text(tokenizer(texts))
    theirs_i = torch.nn.functional.normalize(image_rows.double(), dim=-1).numpy()
    theirs_t = torch.nn.functional.normalize(text_rows.double(), dim=-1).numpy()
    del model
    free()
    report("CLIP image embeddings vs open_clip", float(np.abs(our_images - theirs_i).max()))
    report("CLIP text embeddings vs open_clip", float(np.abs(our_texts - theirs_t).max()))


def test_owlvit_boxes_and_scores_equal_transformers_post_processing(sd15_cache):
    from transformers import OwlViTForObjectDetection, OwlViTProcessor

    from engine.models.loaders import load_detector
    from engine.score.detection import OwlDetector, detector_query, pad_to_square

    image = photo("chelsea")  # 451 x 300: padded to a square first, as OWL-ViT expects
    detector = OwlDetector(*load_detector(role_path("detector")))
    (found,) = detector.detect([image], [["cat"]], threshold=0.0)
    del detector
    free()
    processor = OwlViTProcessor.from_pretrained(repo("detector"), local_files_only=True,
                                                cache_dir=hub_cache())
    model = OwlViTForObjectDetection.from_pretrained(repo("detector"), local_files_only=True,
                                                     cache_dir=hub_cache())
    square = pad_to_square(image)
    inputs = processor(text=[[detector_query("cat")]], images=square, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    # transformers 5 keeps post_process_object_detection on the image processor.
    (result,) = processor.image_processor.post_process_object_detection(
        outputs, threshold=0.0, target_sizes=torch.tensor([[square.height, square.width]]))
    del model
    free()
    limits = torch.tensor([image.width, image.height] * 2, dtype=torch.float32)
    boxes = torch.minimum(result["boxes"].clamp(min=0), limits)
    scores = result["scores"]
    ours = found["cat"]
    assert ours, "no boxes at threshold 0"
    box_diff = score_diff = 0.0
    for detection in ours:  # each kept box is one of upstream's, with its score
        mine = torch.tensor(detection.box)
        i = int(torch.argmin((boxes - mine).abs().sum(dim=1)))
        box_diff = max(box_diff, float((boxes[i] - mine).abs().max()))
        score_diff = max(score_diff, abs(float(scores[i]) - detection.confidence))
    print(f"\nOWL-ViT: {len(ours)} boxes after suppression of {len(scores)}")
    report("OWL-ViT boxes vs post_process_object_detection (pixels)", box_diff)
    report("OWL-ViT scores vs post_process_object_detection", score_diff)
