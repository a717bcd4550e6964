"""The loaders every model role goes through: real weights and the tiny test models alike.

Each loader takes a local folder (or file), a device and a dtype, and returns ready-to-use
objects in eval mode. They read only local files (no network, `local_files_only`), only
safetensors for diffusers/transformers/open_clip weights, and the official SAM `.pth` only via
engine.models.safe_load (torch's weights-only unpickler). A missing folder or file raises
ModelMissingError naming it; content that cannot be used raises a MyCanvasError naming it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError, ModelMissingError, MyCanvasError, UnsafeModelError, first_line
from engine.models.safe_load import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, load_state_dict

if TYPE_CHECKING:
    import torch

PathLike = str | os.PathLike[str]

SAM_CONFIG = "config.json"
SAM_WEIGHTS = "model.safetensors"
OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors")
# Official SAM image-encoder widths, used to recognise a checkpoint's architecture.
SAM_ARCH_BY_WIDTH = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}

_DTYPE_NAMES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}  # fmt: skip


# --------------------------------------------------------------------------- helpers


def resolve_device_dtype(
    device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None
) -> tuple[torch.device, torch.dtype]:
    """torch objects from strings like "cuda:0" / "fp16"; None dtype means float32."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"Unknown device {device!r}") from e
    if dtype is None:
        return dev, torch.float32
    if isinstance(dtype, torch.dtype):
        return dev, dtype
    name = _DTYPE_NAMES.get(str(dtype).lower().removeprefix("torch."))
    if name is None:
        raise InputError(f"Unknown dtype {dtype!r} (use float32, float16 or bfloat16)")
    return dev, getattr(torch, name)


def _require_dir(path: PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise ModelMissingError(f"{what} not found: {p}")
    if not p.is_dir():
        raise InputError(f"{what} must be a folder: {p}")
    return p


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ModelMissingError(f"{what} missing: {path}")
    return path


@contextlib.contextmanager
def _wrap_load_errors(path: Path, what: str) -> Iterator[None]:
    """Library errors while reading `path` become one readable MyCanvasError.

    Our own errors and out-of-memory pass through untouched (the caller may retry leaner).
    """
    import torch

    try:
        yield
    except (MyCanvasError, torch.OutOfMemoryError):
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError) as e:
        raise InputError(f"{path}: cannot load {what} ({first_line(e)})") from e


class _DropOpenClipChatter(logging.Filter):
    # open_clip logs "initialized randomly" on the root logger when we build the model
    # before loading its weights ourselves; that warning would mislead the user.
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "root" and "open_clip" in record.pathname)


@contextlib.contextmanager
def quiet_open_clip() -> Iterator[None]:
    flt = _DropOpenClipChatter()
    root = logging.getLogger()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a readable JSON file ({first_line(e)})") from e
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


def load_strict(model: torch.nn.Module, state: Mapping[str, Any], source: PathLike) -> None:
    """load_state_dict(strict=True) with an error that lists a few missing/unexpected keys."""
    result = model.load_state_dict(state, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise InputError(f"{source}: weights do not fit the model: {'; '.join(parts)}")


def _safetensors_only(folder: Path, names: tuple[str, ...], what: str) -> Path:
    """The first of `names` present; a folder holding only pickle weights is refused."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    pickles = sorted(f.name for f in folder.iterdir() if f.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise UnsafeModelError(
            f"{folder / pickles[0]}: {what} weights are only loaded from .safetensors "
            "(a pickle file could run code on load)"
        )
    raise ModelMissingError(f"{what} weights missing: {folder / names[0]}")


# --------------------------------------------------------------------------- Stable Diffusion


def _no_library_progress_bars() -> None:
    # Jobs report loading progress themselves; the libraries' tqdm bars would only garble the
    # CLI's progress line and the worker's stderr.
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def weights_variant(folder: Path) -> str | None:
    """"fp16" when the pipeline folder holds half-precision weight files only (what the sd15
    profile downloads), else None: the full-precision files are loaded as before."""
    weights = [f.name for f in folder.glob("*/*.safetensors")]
    if any(".fp16." not in name for name in weights):
        return None
    return "fp16" if weights else None


def _load_sd(cls_name: str, folder: PathLike, device: Any, dtype: Any, what: str,
             without: tuple[str, ...] = ()) -> Any:
    p = _require_dir(folder, f"{what} model folder")
    _require_file(p / "model_index.json", f"{what} pipeline description")
    dev, dt = resolve_device_dtype(device, dtype)
    # Half-precision files load as the device needs: cast to `dt` (float32 on a CPU).
    variant = weights_variant(p)
    import diffusers

    _no_library_progress_bars()

    cls = getattr(diffusers, cls_name)
    with _wrap_load_errors(p, what):
        pipe = cls.from_pretrained(
            str(p),
            use_safetensors=True,
            local_files_only=True,
            safety_checker=None,
            requires_safety_checker=False,
            dtype=dt,
            variant=variant,
            **dict.fromkeys(without),
        )
        pipe = pipe.to(dev)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_text_to_image(
    folder: PathLike, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None
) -> Any:
    """A diffusers StableDiffusionPipeline from a local pipeline folder (safetensors only)."""
    pipe = _load_sd("StableDiffusionPipeline", folder, device, dtype, "text-to-image")
    if pipe.unet.config.in_channels != pipe.vae.config.latent_channels:
        raise InputError(
            f"{folder}: this is an inpainting model (UNet takes {pipe.unet.config.in_channels} "
            "channels); choose it for the inpainting role"
        )
    return pipe


def load_inpaint(
    folder: PathLike, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None,
    without: tuple[str, ...] = (),
) -> Any:
    """A diffusers StableDiffusionInpaintPipeline from a local pipeline folder. Components
    named in `without` (e.g. "unet", "vae") are not loaded: they are None, for a caller that
    brings its own (the OpenVINO backend)."""
    return _load_sd("StableDiffusionInpaintPipeline", folder, device, dtype, "inpainting",
                    without)


# --------------------------------------------------------------------------- SAM


def build_sam(cfg: Mapping[str, Any]) -> Any:
    """A segment_anything Sam (randomly initialised, eval mode) from our config.json schema.

    arch "vit_b"/"vit_l"/"vit_h" uses the package's own registry builders (without their
    `checkpoint=`, which unpickles freely); arch "custom" reads the sizes from `cfg`.
    """
    from segment_anything import sam_model_registry

    arch = str(cfg.get("arch", "custom"))
    if arch in sam_model_registry:
        return sam_model_registry[arch](checkpoint=None).eval()
    if arch != "custom":
        raise InputError(f"Unknown SAM architecture {arch!r} (use vit_b, vit_l, vit_h or custom)")

    from functools import partial

    import torch
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    try:
        img = int(cfg["img_size"])
        patch = int(cfg["patch_size"])
        dim = int(cfg["prompt_embed_dim"])
        emb = img // patch
        sam = Sam(
            image_encoder=ImageEncoderViT(
                img_size=img,
                patch_size=patch,
                embed_dim=int(cfg["encoder_embed_dim"]),
                depth=int(cfg["encoder_depth"]),
                num_heads=int(cfg["encoder_num_heads"]),
                mlp_ratio=float(cfg.get("mlp_ratio", 4.0)),
                out_chans=dim,
                qkv_bias=True,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                use_rel_pos=True,
                window_size=int(cfg["window_size"]),
                global_attn_indexes=tuple(int(i) for i in cfg["encoder_global_attn_indexes"]),
            ),
            prompt_encoder=PromptEncoder(
                embed_dim=dim,
                image_embedding_size=(emb, emb),
                input_image_size=(img, img),
                mask_in_chans=int(cfg.get("mask_in_chans", 16)),
            ),
            mask_decoder=MaskDecoder(
                num_multimask_outputs=int(cfg.get("num_multimask_outputs", 3)),
                transformer=TwoWayTransformer(
                    depth=int(cfg.get("decoder_depth", 2)),
                    embedding_dim=dim,
                    mlp_dim=int(cfg["decoder_mlp_dim"]),
                    num_heads=int(cfg["decoder_num_heads"]),
                ),
                transformer_dim=dim,
                iou_head_depth=int(cfg.get("iou_head_depth", 3)),
                iou_head_hidden_dim=int(cfg["iou_head_hidden_dim"]),
            ),
            pixel_mean=[float(v) for v in cfg.get("pixel_mean", [123.675, 116.28, 103.53])],
            pixel_std=[float(v) for v in cfg.get("pixel_std", [58.395, 57.12, 57.375])],
        )
    except KeyError as e:
        raise InputError(f"SAM config lacks the field {e.args[0]!r}") from e
    return sam.eval()


def _sam_arch_from_weights(state: Mapping[str, Any], path: Path) -> str:
    w = state.get("image_encoder.patch_embed.proj.weight")
    arch = SAM_ARCH_BY_WIDTH.get(int(w.shape[0])) if w is not None else None
    if arch is None:
        for name in SAM_ARCH_BY_WIDTH.values():  # fall back on the official file names
            if name in path.name:
                return name
        raise InputError(f"{path}: not a recognised SAM checkpoint (pass arch=vit_b/vit_l/vit_h)")
    return arch


def load_segmenter(
    path: PathLike,
    arch: str | Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
) -> Any:
    """segment_anything Sam in eval mode.

    `path` is a folder with our config.json + model.safetensors, or an official checkpoint
    file (`sam_vit_b_01ec64.pth`, ...; read weights-only) or a `.safetensors` conversion of it.
    `arch` ("vit_b", "vit_l", "vit_h", or a config mapping like config.json) overrides the
    architecture; for a file it is otherwise recognised from the weights.
    """
    p = Path(path)
    if not p.exists():
        raise ModelMissingError(f"Segmentation model not found: {p}")
    dev, dt = resolve_device_dtype(device, dtype)
    if p.is_dir():
        cfg = _read_json(_require_file(p / SAM_CONFIG, "SAM config"))
        if isinstance(arch, Mapping):
            cfg = dict(arch)
        elif arch is not None:
            cfg = {**cfg, "arch": arch}
        weights = _safetensors_only(p, (SAM_WEIGHTS,), "SAM")
        state = load_state_dict(weights)
        with _wrap_load_errors(p / SAM_CONFIG, "the SAM model"):
            model = build_sam(cfg)
    else:
        if p.suffix.lower() not in SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES:
            raise UnsafeModelError(f"{p.name}: unsupported weights format for SAM")
        weights = p
        state = load_state_dict(p)
        if isinstance(arch, Mapping):
            cfg = dict(arch)
        else:
            cfg = {"arch": arch or _sam_arch_from_weights(state, p)}
        with _wrap_load_errors(p, "the SAM model"):
            model = build_sam(cfg)
    load_strict(model, state, weights)
    return model.to(device=dev, dtype=dt).eval()


# --------------------------------------------------------------------------- open_clip


_OPEN_CLIP_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def load_clip(
    folder: PathLike, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None
) -> tuple[Any, Any, Any]:
    """(model, preprocess, tokenizer) from open_clip_config.json + open_clip_model.safetensors.

    The layout of laion/timm open_clip repos on the Hugging Face hub. `.bin` weights are refused.
    """
    p = Path(folder)
    if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES:
        raise UnsafeModelError(f"{p}: CLIP weights are only loaded from .safetensors")
    p = _require_dir(folder, "CLIP model folder")
    config_path = _require_file(p / OPEN_CLIP_CONFIG, "open_clip config")
    config = _read_json(config_path)
    if "model_cfg" not in config:
        raise InputError(f"{config_path}: lacks 'model_cfg'")
    weights = _safetensors_only(p, OPEN_CLIP_WEIGHTS, "CLIP")
    dev, dt = resolve_device_dtype(device, dtype)
    precision = _OPEN_CLIP_PRECISION.get(str(dt).removeprefix("torch."), "fp32")
    state = load_state_dict(weights)

    import open_clip

    with _wrap_load_errors(config_path, "the CLIP model"), quiet_open_clip():
        # load_weights=False: we read the weights ourselves (safetensors only), and
        # pretrained_text=False keeps a hub text tower from fetching its own weights.
        model, _, preprocess = open_clip.create_model_and_transforms(
            f"local-dir:{p}",
            load_weights=False,
            precision=precision,
            device=dev,
            pretrained_text=False,
        )
        tokenizer = open_clip.get_tokenizer(f"local-dir:{p}")
    state = dict(state)
    # Same small fix-ups open_clip applies to its own checkpoints.
    for key in ("logit_scale", "logit_bias"):
        own = getattr(model, key, None)
        if key in state and own is not None and own.ndim != state[key].ndim:
            state[key] = state[key].reshape(own.shape)
    state.pop("text.transformer.embeddings.position_ids", None)
    load_strict(model, state, weights)
    return model.eval(), preprocess, tokenizer


# --------------------------------------------------------------------------- OWL-ViT


def load_detector(
    folder: PathLike, device: str | torch.device = "cpu", dtype: str | torch.dtype | None = None
) -> tuple[Any, Any]:
    """(OwlViTForObjectDetection, OwlViTProcessor) from a local transformers folder."""
    p = _require_dir(folder, "Detector model folder")
    _require_file(p / "config.json", "detector config")
    _safetensors_only(p, ("model.safetensors", "model.safetensors.index.json"), "detector")
    dev, dt = resolve_device_dtype(device, dtype)
    from transformers import OwlViTForObjectDetection, OwlViTProcessor

    _no_library_progress_bars()

    with _wrap_load_errors(p, "the OWL-ViT detector"):
        model = OwlViTForObjectDetection.from_pretrained(
            str(p), use_safetensors=True, local_files_only=True, dtype=dt
        )
        processor = OwlViTProcessor.from_pretrained(str(p), local_files_only=True)
    return model.to(dev).eval(), processor  # type: ignore[arg-type]  # torch.device is fine
