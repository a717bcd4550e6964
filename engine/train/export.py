"""The learned concepts on disk, in the layout plain diffusers reads, plus our manifest.

    export/
      pytorch_custom_diffusion_weights.safetensors   k/v of every cross-attention layer, named
                                                     as diffusers' Custom Diffusion processors
                                                     ("<layer>.processor.to_k_custom_diffusion
                                                     .weight"); every other attention layer
                                                     has an empty entry, so loading installs a
                                                     processor on all of them (diffusers
                                                     refuses a partial set)
      <token>.safetensors                            one per learned token: {"<mochi>": row}
                                                     (file named without the angle brackets,
                                                     which Windows forbids in file names)
      mycanvas_concepts.json                         our manifest: concepts, tokens, files,
                                                     base model, prompt strategies, run

In plain diffusers (0.42):

    pipe.unet.load_attn_procs(folder, weight_name=WEIGHTS_NAME, _pipeline=pipe)
    pipe.load_textual_inversion(folder / "mochi.safetensors")

Note: diffusers 0.42.1's `unet.load_attn_procs` only installs the processors when it is
given `_pipeline` (it parses the file and silently leaves the UNet unchanged otherwise).
`apply_concepts` below needs neither that nor the processors: it writes the k/v weights
into the UNet's own layers, which keeps the default (SDPA) attention.
The folder is assembled under a temp name and renamed into place when complete.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from engine.atomic import TEMP_MARK, fsync_dir
from engine.errors import InputError, reading

WEIGHTS_NAME = "pytorch_custom_diffusion_weights.safetensors"
MANIFEST_NAME = "mycanvas_concepts.json"
MANIFEST_FORMAT = "mycanvas-custom-diffusion"
MANIFEST_VERSION = 1
_K, _V = ".to_k", ".to_v"


def token_file_name(token: str) -> str:
    from engine.paths import safe_component

    return f"{safe_component(token.strip('<>'), fallback='token')}.safetensors"


def export_fingerprint(files: list[Path]) -> str:
    """What tells two exports apart: a hash of the weight and token files' names and bytes
    (weights first, then the tokens in the manifest's order). Computed once, when the folder
    is written, and kept in the manifest: reading a run never hashes its weights again."""
    import hashlib

    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def processor_state(kv_weights: dict[str, Any], processor_names: list[str]) -> dict[str, Any]:
    """diffusers' Custom Diffusion state dict from '<attn>.to_k' / '<attn>.to_v' weights."""
    import torch

    state: dict[str, Any] = {}
    trained = set()
    for name, weight in kv_weights.items():
        attn, kind = (name[: -len(_K)], "k") if name.endswith(_K) else (name[: -len(_V)], "v")
        state[f"{attn}.processor.to_{kind}_custom_diffusion.weight"] = \
            weight.detach().float().cpu().contiguous()
        trained.add(f"{attn}.processor")
    for processor in processor_names:
        if processor not in trained:
            state[processor] = torch.empty(0)  # "this layer keeps its own attention"
    return state


def export_concepts(model: Any, out_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write the export folder for a CustomDiffusionModel (replacing an older export)."""
    from safetensors.torch import save_file

    for name, layer in model.kv_layers.items():
        if layer.bias is not None:
            raise InputError(f"{name} has a bias, which diffusers' Custom Diffusion format "
                             "cannot hold")
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    temp = out_dir.with_name(f".{out_dir.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    temp.mkdir()
    try:
        kv = {name: layer.weight for name, layer in model.kv_layers.items()}
        save_file(processor_state(kv, list(model.unet.attn_processors)), str(temp / WEIGHTS_NAME),
                  metadata={"format": "pt"})
        files = {}
        for token, row in model.token_rows().items():
            files[token] = token_file_name(token)
            save_file({token: row.float().contiguous()}, str(temp / files[token]),
                      metadata={"format": "pt"})
        fingerprint = export_fingerprint([temp / WEIGHTS_NAME,
                                          *(temp / name for name in files.values())])
        full = {**manifest, "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
                "weights": WEIGHTS_NAME, "token_files": files, "fingerprint": fingerprint}
        (temp / MANIFEST_NAME).write_text(json.dumps(full, indent=1, ensure_ascii=False),
                                          encoding="utf-8")
        for entry in temp.iterdir():
            with open(entry, "rb+") as f:
                os.fsync(f.fileno())
        _swap_into_place(temp, out_dir)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return out_dir


def _swap_into_place(temp: Path, out_dir: Path) -> None:
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}{TEMP_MARK}{os.getpid()}-old")
        os.replace(out_dir, old)
    os.replace(temp, out_dir)
    fsync_dir(out_dir.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(export_dir: Path) -> dict[str, Any]:
    path = Path(export_dir) / MANIFEST_NAME
    again = "export the run again (mycanvas train PROJECT --resume RUN re-exports a finished run)"
    with reading(path, "a concept manifest", again[:1].upper() + again[1:]):
        data = json.loads(path.read_text(encoding="utf-8"))
    if (not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT
            or not isinstance(data.get("token_files"), dict)):
        raise InputError(f"{path}: not a MyCanvas concept manifest; {again}")
    if data.get("version", 0) > MANIFEST_VERSION:
        raise InputError(f"{path}: made by a newer version of MyCanvas Studio")
    return data


def apply_concepts(pipe: Any, export_dir: Path) -> list[str]:
    """Load an export into a StableDiffusionPipeline: the tokens (textual inversion) and
    the k/v weights written into the UNet's own cross-attention layers. Returns the tokens."""
    import torch
    from safetensors.torch import load_file

    export_dir = Path(export_dir)
    manifest = read_manifest(export_dir)
    run = manifest.get("run_id", "RUN")
    remedy = (f"Export the run again: mycanvas train PROJECT --resume {run} (it only "
              "re-exports a finished run)")
    with reading(export_dir / manifest["weights"], "a safetensors file", remedy):
        state = load_file(str(export_dir / manifest["weights"]))
    suffix = ".processor.to_{}_custom_diffusion.weight"
    with torch.no_grad():
        for key, weight in state.items():
            for kind in ("k", "v"):
                if key.endswith(suffix.format(kind)):
                    attn = pipe.unet.get_submodule(key[: -len(suffix.format(kind))])
                    layer = getattr(attn, f"to_{kind}")
                    if layer.weight.shape != weight.shape:
                        raise InputError(f"{export_dir}: {key} does not fit this model")
                    layer.weight.copy_(weight.to(layer.weight.dtype))
    tokens = list(manifest["token_files"])
    for token in tokens:
        token_file = export_dir / manifest["token_files"][token]
        with reading(token_file, "a safetensors file", remedy):
            embedding = load_file(str(token_file))
        pipe.load_textual_inversion(embedding, token=token)
    return tokens
