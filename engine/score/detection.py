"""OWL-ViT detection of class words, batched over pictures, as metrics.py defines it:
pictures padded to a square at the right and bottom with grey, per-query sigmoid
confidences, a threshold, then non-maximum suppression per class word."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.score.metrics import GREY, NMS_IOU
from engine.text import article

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the picture's pixels
    confidence: float


def detector_query(class_word: str) -> str:
    """What OWL-ViT is asked for a class word: 'a photo of a cat' (its prompt template)."""
    return f"a photo of {article(class_word)} {class_word}"


def pad_to_square(image: Image.Image) -> Image.Image:
    from PIL import Image

    side = max(image.size)
    canvas = Image.new("RGB", (side, side), GREY)
    canvas.paste(image.convert("RGB"), (0, 0))
    return canvas


class OwlDetector:
    """OWL-ViT (transformers) with its processor; one forward per batch of pictures."""

    def __init__(self, model: Any, processor: Any, device: str = "cpu") -> None:
        self.model = model
        self.processor = processor
        self.device = device
        self.forwards = 0

    def detect(self, images: Sequence[Image.Image], words: Sequence[Sequence[str]],
               threshold: float) -> list[dict[str, list[Detection]]]:
        """For each picture, each of its class words -> the boxes at or above `threshold`
        after suppression, most confident first. The batch shares one list of queries."""
        import torch
        from torchvision.ops import nms

        union = sorted({w for ws in words for w in ws})
        if not images or not union:
            return [{} for _ in images]
        tokenizer = self.processor.tokenizer
        length = int(self.model.config.text_config.max_position_embeddings)
        text = tokenizer([detector_query(w) for w in union], padding="max_length",
                         truncation=True, max_length=length, return_tensors="pt")
        pixels = self.processor.image_processor(
            images=[pad_to_square(im) for im in images], return_tensors="pt")["pixel_values"]
        dtype = next(self.model.parameters()).dtype
        n = len(images)
        with torch.inference_mode():
            out = self.model(input_ids=text["input_ids"].repeat(n, 1).to(self.device),
                             attention_mask=text["attention_mask"].repeat(n, 1).to(self.device),
                             pixel_values=pixels.to(self.device, dtype))
        self.forwards += 1
        confidences = out.logits.float().sigmoid().cpu()  # (n, boxes, queries)
        centres = out.pred_boxes.float().cpu()  # (n, boxes, 4): cx, cy, w, h of the square
        results: list[dict[str, list[Detection]]] = []
        for b, image in enumerate(images):
            side = float(max(image.size))
            cx, cy, w, h = (centres[b, :, i] * side for i in range(4))
            corners = torch.stack([(cx - w / 2).clamp(0, image.width),
                                   (cy - h / 2).clamp(0, image.height),
                                   (cx + w / 2).clamp(0, image.width),
                                   (cy + h / 2).clamp(0, image.height)], dim=1)
            real = (corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1])
            found: dict[str, list[Detection]] = {}
            for word in dict.fromkeys(words[b]):
                conf = confidences[b, :, union.index(word)]
                keep = torch.nonzero(real & (conf >= threshold)).flatten()
                order = keep[nms(corners[keep], conf[keep], NMS_IOU)] if len(keep) else keep
                found[word] = [Detection(_corners(corners[i].tolist()), float(conf[i]))
                               for i in order.tolist()]
            results.append(found)
        return results


def _corners(values: list[float]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in values)
    return x0, y0, x1, y1
