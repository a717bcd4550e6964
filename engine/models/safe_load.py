"""Load a weights file into a plain state dict without ever running code from it.

safetensors files are plain tensors by construction. Pickle checkpoints (`.pt`, `.pth`, `.bin`,
`.ckpt`, e.g. the official SAM `.pth`) go through torch's weights-only unpickler, which refuses
any global that is not allow-listed; such a refusal means the file would run code when loaded
normally, and is reported as UnsafeModelError. Nothing here calls torch.load without
weights_only=True. GGUF files are not state dicts: the planner loads them with llama.cpp.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError, ModelMissingError, UnsafeModelError

if TYPE_CHECKING:
    from torch import Tensor

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# Keys under which training scripts commonly nest the real state dict.
_NESTING_KEYS = ("state_dict", "model", "module", "model_state_dict")


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Tensors by name from a `.safetensors` file or a weights-only pickle checkpoint (CPU)."""
    p = Path(path)
    if not p.is_file():
        raise ModelMissingError(f"Weights file not found: {p}")
    suffix = p.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _load_safetensors(p)
    if suffix in PICKLE_SUFFIXES:
        return _unwrap(_load_pickle_weights_only(p), p)
    if suffix == ".gguf":
        raise UnsafeModelError(
            f"{p.name}: unsupported weights format (GGUF is loaded by the planner, "
            "not as a state dict)"
        )
    raise UnsafeModelError(f"{p.name}: unsupported weights format {suffix or '(no suffix)'!r}")


def _load_safetensors(p: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{p}: not a readable safetensors file ({_first_line(e)})") from e


def _load_pickle_weights_only(p: Path) -> Any:
    import torch

    # Memory-map zip checkpoints (SAM ViT-H is 2.5 GB); legacy files cannot be mapped.
    mmap = zipfile.is_zipfile(p)
    try:
        with warnings.catch_warnings():
            # "Detected pickle protocol N" is noise: the refusal below says what matters.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(p, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        # torch raises this when its restricted unpickler meets a global it does not allow
        # (an object whose loading would call code) or an opcode it does not support.
        raise UnsafeModelError(f"{p}: refused — {_unpickler_reason(e)}") from e
    except Exception as e:  # corrupt or truncated archive, empty file, ...
        raise InputError(f"{p}: not a readable PyTorch checkpoint ({_first_line(e)})") from e


def _is_tensor_dict(obj: Any) -> bool:
    import torch

    return (
        isinstance(obj, dict)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _unwrap(obj: Any, p: Path) -> dict[str, Tensor]:
    if _is_tensor_dict(obj):
        return dict(obj)
    if isinstance(obj, dict):
        for key in _NESTING_KEYS:
            if _is_tensor_dict(obj.get(key)):
                return dict(obj[key])
    raise InputError(f"{p}: does not contain a state dict (name → tensor)")


def _unpickler_reason(e: BaseException) -> str:
    # torch's message is a paragraph; the useful line names the blocked global or opcode.
    lines = [ln.strip().rstrip(".") for ln in str(e).splitlines()]
    detail = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), "")
    if "GLOBAL" in detail:
        what = "this pickle checkpoint would run code on load"
    else:
        what = "this is not a plain tensor checkpoint, and unpickling it could run code on load"
    hint = "Use a .safetensors file instead."
    return f"{what} ({detail[:160]}). {hint}" if detail else f"{what}. {hint}"


def _first_line(e: BaseException, limit: int = 200) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    return line[:limit]


def _gguf_problem(p: Path) -> str:
    try:
        with open(p, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        return f"{p}: cannot be read ({e.strerror or e})"
    return "" if magic == b"GGUF" else f"{p}: not a GGUF file"


def weights_problem(path: str | os.PathLike[str]) -> str:
    """Why the weights at `path` (a file, or a model folder) would be refused when loaded,
    found the way loading reads them (safetensors headers, weights-only unpickling; never
    code); '' when they read as plain weights. For `mycanvas doctor`."""
    from engine.errors import MyCanvasError, first_line

    p = Path(path)
    if p.is_file():
        if p.suffix.lower() == ".gguf":
            return _gguf_problem(p)
        try:
            load_state_dict(p)
        except MyCanvasError as e:
            return first_line(e)
        return ""
    files = [f for f in sorted(p.rglob("*")) if f.is_file() and len(f.relative_to(p).parts) <= 3]
    safe = [f for f in files if f.suffix.lower() in SAFETENSORS_SUFFIXES]
    pickles = [f for f in files if f.suffix.lower() in PICKLE_SUFFIXES]
    if not safe:
        if pickles:
            return (f"{pickles[0]}: the folder holds only pickle weights; model folders are "
                    "loaded from .safetensors only (a pickle file could run code on load)")
        return f"{p}: holds no weights file (.safetensors)"
    from safetensors import safe_open

    for f in safe:
        try:
            with safe_open(str(f), "pt") as opened:
                opened.keys()
        except Exception as e:
            return f"{f}: not a readable safetensors file ({first_line(e)})"
    return ""
