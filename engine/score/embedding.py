"""CLIP embeddings of pictures, crops, cut-outs and texts, batched; unit vectors as numpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.score.metrics import GREY

if TYPE_CHECKING:
    from PIL import Image

MAX_BATCH = 32  # pictures per CLIP forward: bounds activation memory at full size


def on_grey_square(image: Image.Image) -> Image.Image:
    """The image centred on a grey square as wide as its longer side; transparent pixels of
    a cut-out become that grey (metrics.py: crops and references are prepared alike)."""
    from PIL import Image

    side = max(image.size)
    canvas = Image.new("RGB", (side, side), GREY)
    rgba = image.convert("RGBA")
    canvas.paste(rgba, ((side - image.width) // 2, (side - image.height) // 2), rgba)
    return canvas


class ClipEmbedder:
    """Unit CLIP embeddings (float64 rows) from an open_clip model, preprocess, tokenizer."""

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, device: str = "cpu",
                 max_batch: int = MAX_BATCH) -> None:
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.max_batch = max(1, int(max_batch))
        self.forwards = 0  # CLIP forward passes so far (tests and the benchmark read it)

    def _dtype(self) -> Any:
        return next(self.model.parameters()).dtype

    def images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """One row per image, through CLIP's own preprocessing, at most max_batch a pass."""
        import torch

        out = []
        for start in range(0, len(images), self.max_batch):
            part = images[start:start + self.max_batch]
            batch = torch.stack([self.preprocess(im.convert("RGB")) for im in part])
            with torch.inference_mode():
                feats = self.model.encode_image(batch.to(self.device, self._dtype()))
            self.forwards += 1
            out.append(feats.float().cpu().numpy().astype(np.float64))
        return _unit(np.concatenate(out) if out else np.zeros((0, 0)))

    def crops(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Crops and cut-outs: each centred on a grey square first."""
        return self.images([on_grey_square(im) for im in images])

    def texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        for start in range(0, len(texts), self.max_batch):
            tokens = self.tokenizer(list(texts[start:start + self.max_batch]))
            with torch.inference_mode():
                feats = self.model.encode_text(tokens.to(self.device))
            self.forwards += 1
            out.append(feats.float().cpu().numpy().astype(np.float64))
        return _unit(np.concatenate(out) if out else np.zeros((0, 0)))


def _unit(rows: np.ndarray) -> np.ndarray:
    if rows.size == 0:
        return rows
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)
