"""Put a run's concepts into a warm Stable Diffusion pipeline, and take them out again exactly.

`apply_concepts(pipe, run)` changes three things and keeps what it replaced:

* the UNet's layers named by the weights file (cross-attention k/v, and q/out should a run
  train them): each gets a new weight Parameter; the original Parameter object is kept;
* the tokenizer: a copy of it with the run's tokens added (the original object is kept);
* the text encoder's input embedding: a `TokenRowsEmbedding` over the original one (which it
  keeps, unchanged) plus one row per token.

`unload_concepts(pipe, loaded)` puts every original object back, so the pipeline computes
exactly what it computed before (tested bit for bit). Nothing is written into the base
weights, which is why no copy of them is needed; the cost is the run's own tensors.

Why not diffusers' loaders: in 0.42.1 `unet.load_attn_procs` installs nothing (and says
nothing) unless given the private `_pipeline` argument, and even then replaces every
attention processor (the default SDPA path included) with Custom Diffusion's; and
`load_textual_inversion` refuses a token already in the vocabulary, so a warm pipeline that
switches runs must unload first anyway: we own both directions here.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import InputError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from engine.generate.concepts import RunConcepts

# "<layer>.processor.to_k_custom_diffusion.weight" -> ("<layer>", "to_k", "weight")
_KEY = re.compile(r"^(?P<attn>.+)\.processor\.(?P<proj>to_[qkv]|to_out)_custom_diffusion"
                  r"(?P<out>\.0)?\.(?P<kind>weight|bias)$")


@dataclass
class LoadedConcepts:
    """What apply_concepts changed, and the originals unload_concepts puts back."""

    run: RunConcepts
    token_ids: dict[str, int]
    tokenizer: Any  # the original tokenizer
    embedding: nn.Module  # the original input embedding
    parameters: list[tuple[nn.Module, str, nn.Parameter]] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return self.run.fingerprint


def _load_tensors(path: Any) -> dict[str, torch.Tensor]:
    """A run's exported tensors; any damage (safetensors raises its own error class) is one
    line naming the file and what to do."""
    from safetensors.torch import load_file

    from engine.errors import reading

    with reading(path, "a safetensors file", "Export the run again: mycanvas train PROJECT "
                 "--resume RUN (it only re-exports a finished run)"):
        return dict(load_file(str(path)))


def _layer_weights(pipe: Any, run: RunConcepts) -> list[tuple[nn.Module, str, torch.Tensor]]:
    """(module, "weight"/"bias", new value) for every trained layer in the weights file."""
    where = run.weights_file
    out = []
    for key, value in _load_tensors(where).items():
        if value.numel() == 0:
            continue  # "this layer keeps its own attention"
        match = _KEY.match(key)
        if match is None or (match["proj"] == "to_out") != bool(match["out"]):
            raise InputError(f"{where}: {key} is not a Custom Diffusion weight")
        path = f"{match['attn']}.{match['proj']}{'.0' if match['proj'] == 'to_out' else ''}"
        try:
            module = pipe.unet.get_submodule(path)
        except AttributeError:
            raise InputError(f"Run {run.run_id}'s weights do not fit this model ({path} is not "
                             f"in its UNet): it was trained on profile {run.profile!r}") from None
        current = getattr(module, match["kind"], None)
        if current is None or tuple(current.shape) != tuple(value.shape):
            raise InputError(f"Run {run.run_id}'s weights do not fit this model ({key}): it was "
                             f"trained on profile {run.profile!r}")
        out.append((module, match["kind"], value))
    return out


def _token_rows(run: RunConcepts, dim: int) -> torch.Tensor:
    import torch

    rows = []
    for token, path in run.token_files.items():
        tensors = _load_tensors(path)
        if token not in tensors:
            raise InputError(f"{path}: holds no embedding for {token}")
        row = tensors[token].reshape(-1)
        if row.numel() != dim:
            raise InputError(f"Run {run.run_id}'s token {token} does not fit this model "
                             f"(an embedding of {row.numel()} values, the model has {dim}): it "
                             f"was trained on profile {run.profile!r}")
        rows.append(row.float())
    return torch.stack(rows) if rows else torch.zeros(0, dim)


def apply_concepts(pipe: Any, run: RunConcepts) -> LoadedConcepts:
    """Load `run`'s concepts into `pipe` (a StableDiffusionPipeline without any loaded);
    everything is checked before anything is changed."""
    import torch
    from torch import nn

    from engine.generate.token_rows import TokenRowsEmbedding

    embedding = pipe.text_encoder.get_input_embeddings()
    if isinstance(embedding, TokenRowsEmbedding):
        raise InputError("This pipeline already holds a run's concepts; unload them first")
    layers = _layer_weights(pipe, run)
    rows = _token_rows(run, int(embedding.embedding_dim))
    tokens = list(run.token_files)
    vocab = pipe.tokenizer.get_vocab()
    clash = [t for t in tokens if t in vocab]
    if clash:
        raise InputError(f"Run {run.run_id}'s token {clash[0]} is already a word of the "
                         "tokenizer, so it cannot name a concept")
    if len(pipe.tokenizer) != embedding.num_embeddings:
        raise InputError("The tokenizer and the text encoder disagree on the vocabulary size")
    tokenizer = copy.deepcopy(pipe.tokenizer)
    if tokenizer.add_tokens(tokens) != len(tokens):
        raise InputError(f"Could not add run {run.run_id}'s tokens to the tokenizer")
    ids = dict(zip(tokens, tokenizer.convert_tokens_to_ids(tokens), strict=True))
    first = int(embedding.num_embeddings)
    if list(ids.values()) != list(range(first, first + len(tokens))):
        raise InputError("The tokenizer gave the new tokens unexpected ids")

    loaded = LoadedConcepts(run, ids, pipe.tokenizer, embedding)
    weight = embedding.weight
    with torch.no_grad():
        for module, kind, value in layers:
            old = getattr(module, kind)
            loaded.parameters.append((module, kind, old))
            # Flagged like the original: autocast caches its low-precision copy of a
            # weight only for leaves that require grad (generation runs under no_grad).
            setattr(module, kind, nn.Parameter(value.to(old.device, old.dtype),
                                               requires_grad=old.requires_grad))
    pipe.text_encoder.set_input_embeddings(
        TokenRowsEmbedding(embedding, rows.to(weight.device, weight.dtype)))
    pipe.tokenizer = tokenizer
    return loaded


def unload_concepts(pipe: Any, loaded: LoadedConcepts) -> None:
    """Put back every original object apply_concepts replaced."""
    for module, kind, old in reversed(loaded.parameters):
        setattr(module, kind, old)
    loaded.parameters.clear()
    pipe.text_encoder.set_input_embeddings(loaded.embedding)
    pipe.tokenizer = loaded.tokenizer
