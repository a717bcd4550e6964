"""Tiny deterministic random models for every role, for tests and offline smoke runs.

Each role is described by `resources/tiny/<role>.json` (a config may `extends` another and
override parts of it). A builder seeds torch per component on the CPU, builds the model with
the real library classes and saves it in the same on-disk layout the real weights use, so
engine.models.loaders loads both the same way. The same config gives byte-identical files.

ensure_tiny_models() builds each role once under `models_dir()/tiny/<role>`: into a temp
folder beside it, renamed into place when complete (a killed build never leaves a half
folder), with a stamp that records the config hash so a changed config rebuilds.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_bytes, pid_alive
from engine.errors import InputError
from engine.paths import RESOURCES, models_dir

# Bump when a builder changes what it writes, so existing tiny folders are rebuilt.
BUILDER_VERSION = 1
ROLES = ("base", "inpaint", "segmenter", "clip", "detector")
CONFIG_DIR = RESOURCES / "tiny"
STAMP_NAME = "tiny_stamp.json"
_BUILDING, _OLD = ".building-", ".old-"


# --------------------------------------------------------------------------- configs


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def tiny_config(role: str, config_dir: Path | None = None) -> dict[str, Any]:
    """The resolved config of `role` (with any `extends` chain merged in)."""
    folder = config_dir or CONFIG_DIR
    if role not in ROLES:
        raise InputError(f"Unknown tiny model role {role!r} (known: {', '.join(ROLES)})")
    seen: list[str] = []
    name = f"{role}.json"
    layers: list[dict[str, Any]] = []
    while name:
        if name in seen:
            raise InputError(f"{folder / name}: 'extends' loops back on itself")
        seen.append(name)
        path = folder / name
        try:
            layer = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"{path}: unreadable tiny model config ({e})") from e
        layers.append(layer)
        name = layer.pop("extends", "")
    cfg: dict[str, Any] = {}
    for layer in reversed(layers):
        cfg = _deep_merge(cfg, layer)
    cfg["role"] = role
    return cfg


# Random init and serialisation may change between releases of these: an upgrade rebuilds.
_BUILDER_LIBRARIES = ("torch", "diffusers", "transformers", "open_clip_torch", "segment-anything",
                      "safetensors")


def _library_versions() -> str:
    from importlib import metadata

    versions = []
    for dist in _BUILDER_LIBRARIES:
        try:
            versions.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist}=missing")
    return ",".join(versions)


def config_hash(role: str, config_dir: Path | None = None) -> str:
    text = json.dumps(tiny_config(role, config_dir), sort_keys=True, separators=(",", ":"))
    key = f"v{BUILDER_VERSION}:{_library_versions()}:{text}"
    return hashlib.sha256(key.encode()).hexdigest()


def _stamp_bytes(role: str, config_dir: Path | None = None) -> bytes:
    stamp = {"builder_version": BUILDER_VERSION, "config_sha256": config_hash(role, config_dir),
             "role": role, "tiny": True}  # fmt: skip
    return _json_bytes(stamp)


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- builders


def _seeded(seed: int) -> None:
    import torch

    torch.manual_seed(int(seed))


def _build_stable_diffusion(cfg: dict[str, Any], out: Path) -> None:
    import diffusers
    from transformers import CLIPTextConfig, CLIPTextModel

    from engine.models.tokenizer import load_clip_tokenizer, write_clip_tokenizer

    seeds = cfg["seeds"]
    _seeded(seeds["unet"])
    unet = diffusers.UNet2DConditionModel(**cfg["unet"])
    _seeded(seeds["vae"])
    vae = diffusers.AutoencoderKL(**cfg["vae"])
    _seeded(seeds["text_encoder"])
    text_encoder = CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"]))
    sched_cfg = dict(cfg["scheduler"])
    scheduler = getattr(diffusers, sched_cfg.pop("class_name"))(**sched_cfg)

    tok_cfg = cfg["tokenizer"]
    write_clip_tokenizer(out / "tokenizer", pad_token=tok_cfg["pad_token"],
                         model_max_length=tok_cfg["model_max_length"])  # fmt: skip
    tokenizer = load_clip_tokenizer(out / "tokenizer", model_max_length=tok_cfg["model_max_length"])

    pipe = getattr(diffusers, cfg["pipeline_class"])(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    # Save part by part so the tokenizer keeps SD 1.5's vocab.json + merges.txt layout.
    pipe.save_config(str(out))  # model_index.json
    # diffusers' ModelMixin adds save_pretrained; its stubs do not show it.
    unet.save_pretrained(str(out / "unet"), safe_serialization=True)  # type: ignore[attr-defined]
    vae.save_pretrained(str(out / "vae"), safe_serialization=True)  # type: ignore[attr-defined]
    text_encoder.save_pretrained(str(out / "text_encoder"), safe_serialization=True)
    scheduler.save_pretrained(str(out / "scheduler"))


def _state_to_safetensors(model: Any, path: Path, meta: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    # contiguous() copies: safetensors refuses views and shared storage.
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt", **(meta or {})})


def save_random_sam(model_cfg: dict[str, Any], out: Path, seed: int = 0) -> Path:
    """A SAM of `model_cfg` (e.g. {"arch": "vit_b"}) with seeded random weights, saved in the
    folder layout load_segmenter reads; also how full-size architectures are tested."""
    from engine.models.loaders import SAM_CONFIG, SAM_WEIGHTS, build_sam

    out.mkdir(parents=True, exist_ok=True)
    _seeded(seed)
    sam = build_sam(model_cfg)
    _state_to_safetensors(sam, out / SAM_WEIGHTS)
    atomic_write_bytes(out / SAM_CONFIG, _json_bytes(model_cfg))
    return out


def _build_sam(cfg: dict[str, Any], out: Path) -> None:
    save_random_sam(cfg["model"], out, cfg["seed"])


def _build_open_clip(cfg: dict[str, Any], out: Path) -> None:
    import open_clip

    from engine.models.loaders import OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS

    config = {"model_cfg": cfg["model_cfg"], "preprocess_cfg": cfg["preprocess_cfg"]}
    atomic_write_bytes(out / OPEN_CLIP_CONFIG, _json_bytes(config))
    _seeded(cfg["seed"])
    # Built from the written config the same way load_clip builds it, so classes match.
    model = open_clip.create_model(f"local-dir:{out}", load_weights=False, pretrained_text=False)
    _state_to_safetensors(model, out / OPEN_CLIP_WEIGHTS[0])


def _build_owlvit(cfg: dict[str, Any], out: Path) -> None:
    import tempfile

    from transformers import (
        OwlViTConfig,
        OwlViTForObjectDetection,
        OwlViTImageProcessor,
        OwlViTProcessor,
    )

    from engine.models.tokenizer import load_clip_tokenizer, write_clip_tokenizer

    _seeded(cfg["seed"])
    model = OwlViTForObjectDetection(OwlViTConfig(**cfg["model"]))
    model.save_pretrained(str(out), safe_serialization=True)
    tok_cfg = cfg["tokenizer"]
    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer(tmp, pad_token=tok_cfg["pad_token"],
                             model_max_length=tok_cfg["model_max_length"])  # fmt: skip
        tokenizer = load_clip_tokenizer(tmp, model_max_length=tok_cfg["model_max_length"])
    processor = OwlViTProcessor(
        image_processor=OwlViTImageProcessor(**cfg["image_processor"]), tokenizer=tokenizer
    )
    processor.save_pretrained(str(out))


_BUILDERS: dict[str, Callable[[dict[str, Any], Path], None]] = {
    "stable-diffusion": _build_stable_diffusion,
    "sam": _build_sam,
    "open-clip": _build_open_clip,
    "owlvit": _build_owlvit,
}


@contextlib.contextmanager
def _quiet_build() -> Iterator[None]:
    """No shard-writing progress bars or "initialized randomly" warnings: random is the point."""
    from transformers.utils import logging as hf_logging

    from engine.models.loaders import quiet_open_clip

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with quiet_open_clip():
            yield
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _scrub_configs(out: Path) -> None:
    """Drop machine-specific fields from saved JSON configs so builds are byte-identical."""
    for path in sorted(out.rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            continue
        cleaned = {k: v for k, v in data.items() if k not in ("_name_or_path", "name_or_path")}
        if cleaned != data:
            atomic_write_bytes(path, _json_bytes(cleaned))


def build_tiny_role(
    role: str, out_dir: str | os.PathLike[str], *, config_dir: Path | None = None
) -> Path:
    """Build the tiny model for `role` into `out_dir` (must be absent or empty); returns it."""
    cfg = tiny_config(role, config_dir)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"Refusing to build the tiny {role} model into non-empty {out}")
    out.mkdir(parents=True, exist_ok=True)
    kind = cfg.get("kind")
    if kind not in _BUILDERS:
        raise InputError(f"{role}: unknown tiny model kind {kind!r}")
    import torch

    with torch.no_grad(), _quiet_build():
        _BUILDERS[kind](cfg, out)
    _scrub_configs(out)
    atomic_write_bytes(out / STAMP_NAME, _stamp_bytes(role, config_dir))  # written last
    return out


# --------------------------------------------------------------------------- ensure


def tiny_root() -> Path:
    """Where ensure_tiny_models builds by default: `models_dir()/tiny`."""
    return models_dir() / "tiny"


def tiny_role_dir(role: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder the tiny model of `role` lives in (built or not)."""
    if role not in ROLES:
        raise InputError(f"Unknown tiny model role {role!r} (known: {', '.join(ROLES)})")
    return (Path(root) if root is not None else tiny_root()) / role


def is_built(
    role: str, root: str | os.PathLike[str] | None = None, *, config_dir: Path | None = None
) -> bool:
    """True when the role's folder is complete and built from the current config."""
    return _is_current(tiny_role_dir(role, root), role, config_dir)


def _is_current(folder: Path, role: str, config_dir: Path | None) -> bool:
    try:
        return (folder / STAMP_NAME).read_bytes() == _stamp_bytes(role, config_dir)
    except OSError:
        return False


def _remove_leftovers(root: Path) -> None:
    """Folders left by killed builds (dead pid) and by replaced builds."""
    for p in root.iterdir():
        if not (p.is_dir() and p.name.startswith(".")):
            continue
        if _OLD in p.name:
            shutil.rmtree(p, ignore_errors=True)
        elif _BUILDING in p.name:
            pid = p.name.split(_BUILDING, 1)[1].split("-", 1)[0]
            if pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(p, ignore_errors=True)


def _move_into_place(tmp: Path, target: Path, role: str, config_dir: Path | None) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}{_OLD}{os.getpid()}-{secrets.token_hex(4)}")
        with contextlib.suppress(FileNotFoundError):
            os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        # Another process put a folder in place between our two renames: keep it if current.
        shutil.rmtree(tmp, ignore_errors=True)
        if not _is_current(target, role, config_dir):
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def ensure_tiny_models(
    root: str | os.PathLike[str] | None = None,
    roles: Iterable[str] | None = None,
    *,
    config_dir: Path | None = None,
) -> dict[str, Path]:
    """Role → folder of its tiny model, building only roles that are missing or outdated."""
    base = Path(root) if root is not None else tiny_root()
    base.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(base)
    result: dict[str, Path] = {}
    for role in roles or ROLES:
        target = tiny_role_dir(role, base)
        if not _is_current(target, role, config_dir):
            tmp = base / f".{role}{_BUILDING}{os.getpid()}-{secrets.token_hex(4)}"
            try:
                build_tiny_role(role, tmp, config_dir=config_dir)
                _move_into_place(tmp, target, role, config_dir)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        result[role] = target
    return result
