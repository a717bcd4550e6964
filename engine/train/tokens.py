"""New concept tokens on a diffusers pipeline: one trainable embedding row per token.

`add_concept_tokens(tokenizer, text_encoder, tokens, init_words)` adds the tokens to the
tokenizer and swaps the text encoder's input embedding for a `ConceptTokenEmbedding`: the
original matrix, frozen, plus the new rows as a parameter of their own, each starting as its
init word's embedding (the mean over the word's sub-tokens).

Only `AddedTokens.rows` is meant for an optimiser. The matrix itself must never reach one:
AdamW's weight decay moves every row it is given, gradient or not, and a known upstream bug
once left the last of several new tokens untrained that way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from engine.errors import InputError


class ConceptTokenEmbedding(nn.Module):
    """The frozen token embedding, extended by trainable rows for ids past its vocabulary."""

    def __init__(self, base: nn.Embedding, new_rows: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        self.first_new_id = base.num_embeddings
        self.new_rows = nn.Parameter(new_rows.detach().float().clone())

    @property
    def weight(self) -> torch.Tensor:
        """The merged matrix (frozen rows, then the learned ones), for code that reads it."""
        return torch.cat([self.base.weight, self.new_rows.detach().to(self.base.weight.dtype)])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        is_new = input_ids >= self.first_new_id
        known = self.base(input_ids.clamp(max=self.first_new_id - 1))
        learned = self.new_rows[(input_ids - self.first_new_id).clamp(min=0)]
        return torch.where(is_new.unsqueeze(-1), learned.to(known.dtype), known)


@dataclass(frozen=True)
class AddedTokens:
    tokens: tuple[str, ...]
    ids: tuple[int, ...]  # the tokenizer's ids of `tokens`, in order
    embedding: ConceptTokenEmbedding  # now the text encoder's input embedding

    @property
    def rows(self) -> nn.Parameter:
        """The learned rows, one per token in order: the only parameter to optimise."""
        return self.embedding.new_rows

    def rows_by_token(self) -> dict[str, torch.Tensor]:
        """CPU copies of the learned rows, by token (what an export writes)."""
        rows = self.rows.detach().cpu()
        return {token: rows[i].clone() for i, token in enumerate(self.tokens)}


def init_word_embedding(tokenizer: Any, table: torch.Tensor, word: str) -> torch.Tensor:
    ids = tokenizer(word, add_special_tokens=False).input_ids
    if not ids:
        raise InputError(f"The class word {word!r} has no tokens to start a concept from")
    return table[torch.tensor(ids)].float().mean(dim=0)


def add_concept_tokens(tokenizer: Any, text_encoder: Any, tokens: Sequence[str],
                       init_words: Sequence[str], device: Any = None) -> AddedTokens:
    """Add `tokens` (each started from the word at the same place in `init_words`) to a
    CLIP tokenizer and its text encoder; the rows live on `device` (default: the matrix's)."""
    tokens = tuple(tokens)
    if not tokens or len(tokens) != len(init_words):
        raise InputError(f"Need one init word per new token, got {len(tokens)} token(s) and "
                         f"{len(init_words)} word(s)")
    vocab = tokenizer.get_vocab()
    clash = [t for t in tokens if t in vocab]
    if clash:
        raise InputError(f"Token {clash[0]} is already a word of the tokenizer; "
                         "rename the concept's token")
    base = text_encoder.get_input_embeddings()
    if isinstance(base, ConceptTokenEmbedding):
        raise InputError("This text encoder already has learned tokens; load a fresh model")
    base.requires_grad_(False)
    rows = torch.stack([init_word_embedding(tokenizer, base.weight.detach(), w)
                        for w in init_words])
    if tokenizer.add_tokens(list(tokens)) != len(tokens):
        raise InputError("Could not add the concept tokens to the tokenizer")
    ids = tuple(tokenizer.convert_tokens_to_ids(list(tokens)))
    if ids != tuple(range(base.num_embeddings, base.num_embeddings + len(tokens))):
        raise InputError("The tokenizer and the text encoder disagree on the vocabulary size")
    device = base.weight.device if device is None else device
    embedding = ConceptTokenEmbedding(base, rows.to(device))
    text_encoder.set_input_embeddings(embedding)
    return AddedTokens(tokens, ids, embedding)
