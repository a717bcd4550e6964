"""The text encoder's input embedding with a run's learned token rows added beside it."""

from __future__ import annotations

import torch
from torch import nn


class TokenRowsEmbedding(nn.Module):
    """The original token embedding, untouched, plus learned rows for ids past its end."""

    def __init__(self, base: nn.Embedding, rows: torch.Tensor) -> None:
        super().__init__()
        self.base: nn.Embedding = base
        self.first_new_id = int(base.num_embeddings)
        self.num_embeddings = self.first_new_id + int(rows.shape[0])
        self.embedding_dim = int(base.embedding_dim)
        self.rows = nn.Parameter(rows, requires_grad=False)

    @property
    def weight(self) -> torch.Tensor:
        """The merged matrix, for code that reads it (a copy: never trained through)."""
        return torch.cat([self.base.weight, self.rows.to(self.base.weight.dtype)])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        is_new = input_ids >= self.first_new_id
        known = self.base(input_ids.clamp(max=self.first_new_id - 1))
        if not bool(is_new.any()):
            return known  # a prompt without learned tokens: exactly the base embedding
        learned = self.rows[(input_ids - self.first_new_id).clamp(min=0)].to(known.dtype)
        return torch.where(is_new.unsqueeze(-1), learned, known)
