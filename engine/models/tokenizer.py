"""The CLIP BPE tokenizer, derived offline from the vocabulary that open_clip ships.

open_clip bundles `bpe_simple_vocab_16e6.txt.gz` (OpenAI's CLIP merges). From it we write the
Hugging Face layout (`vocab.json`, `merges.txt`, `special_tokens_map.json`,
`tokenizer_config.json`, the same files the SD 1.5 `tokenizer/` folder holds), so
`transformers.CLIPTokenizer.from_pretrained(folder)` loads it with no network. The vocabulary
is built exactly as open_clip's SimpleTokenizer builds it: 256 byte tokens, the same 256 with
`</w>`, the 48 894 merges, then the two special tokens: 49 408 entries, identical ids.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from engine.atomic import atomic_write_bytes
from engine.errors import ModelMissingError

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

BPE_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
VOCAB_SIZE = 49408
N_MERGES = 49152 - 256 - 2  # as open_clip and OpenAI CLIP slice the merges file
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
TOKENIZER_FILES = ("vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json")


def bundled_bpe_path() -> Path:
    """open_clip's bundled BPE merges file, found without importing open_clip (slow import)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError(
            "open_clip_torch is not installed, so the CLIP tokenizer vocabulary is missing"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / BPE_FILE_NAME
        if candidate.is_file():
            return candidate
    raise ModelMissingError(f"open_clip's {BPE_FILE_NAME} is missing from the installed package")


def bytes_to_unicode() -> dict[int, str]:
    """OpenAI's reversible byte → printable-unicode table (same order open_clip uses)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


@lru_cache(maxsize=2)
def _vocab_and_merges(bpe_path: str) -> tuple[dict[str, int], tuple[str, ...]]:
    with gzip.open(bpe_path) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = tuple(lines[1 : N_MERGES + 1])  # line 0 is a version header
    byte_tokens = list(bytes_to_unicode().values())
    tokens = byte_tokens + [t + "</w>" for t in byte_tokens]
    tokens += ["".join(m.split()) for m in merges]
    tokens += [BOS, EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise ModelMissingError(
            f"{bpe_path}: expected a {VOCAB_SIZE}-token CLIP vocabulary, got {len(vocab)}"
        )
    return vocab, merges


def clip_vocab(bpe_path: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Token → id, identical to open_clip's SimpleTokenizer (its special tokens renamed)."""
    return dict(_vocab_and_merges(str(bpe_path or bundled_bpe_path()))[0])


def write_clip_tokenizer(
    folder: str | os.PathLike[str],
    *,
    pad_token: str = EOS,
    model_max_length: int = 77,
    bpe_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a CLIPTokenizer folder; byte-identical output for the same arguments.

    SD 1.5 pads with `<|endoftext|>`; OWL-ViT pads with `!` (id 0).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    vocab, merges = _vocab_and_merges(str(bpe_path or bundled_bpe_path()))
    special = {
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": pad_token,
        "unk_token": EOS,
    }
    config = {
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "do_lower_case": True,
        "errors": "replace",
        "model_max_length": model_max_length,
        "tokenizer_class": "CLIPTokenizer",
        **special,
    }
    atomic_write_bytes(out / "vocab.json", _json_bytes(vocab, indent=None))
    atomic_write_bytes(out / "merges.txt", ("#version: 0.2\n" + "\n".join(merges) + "\n").encode())
    atomic_write_bytes(out / "special_tokens_map.json", _json_bytes(special))
    atomic_write_bytes(out / "tokenizer_config.json", _json_bytes(config))
    return out


def load_clip_tokenizer(
    folder: str | os.PathLike[str], *, model_max_length: int = 77
) -> CLIPTokenizer:
    """transformers.CLIPTokenizer from a folder written by write_clip_tokenizer (or SD's)."""
    p = Path(folder)
    if not (p / "vocab.json").is_file() or not (p / "merges.txt").is_file():
        raise ModelMissingError(f"CLIP tokenizer files (vocab.json, merges.txt) missing in {p}")
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(p), model_max_length=model_max_length)


def _json_bytes(obj: object, indent: int | None = 2) -> bytes:
    return (json.dumps(obj, indent=indent, ensure_ascii=False) + "\n").encode("utf-8")
