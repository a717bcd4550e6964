"""Automatic checks of a dataset item; the user's review (accept/reject) overrides them.

Per concept, three checks, each written down so their numbers mean something:

* **visible**: the concept's mask after occlusion keeps at least `min_visible_fraction` of the
  object's pasted pixels and at least `min_visible_area` of the canvas.
* **seam** (edge and colour test): the ring of repainted background just outside the object
  (starting 2 px out, so the object's own outline is not counted) is compared with the
  background far from every object. `seam-edges` is the ring's mean luminance gradient over
  the far background's (floored at 2 grey levels); a halo, an echo of the outline or an
  unblended patch makes it large. `seam-colour` is the distance (0..441 in RGB) between the
  ring's mean colour and that of the next ring out: a bright or dark fringe.
* **clip** (only when a CLIP model is present): cosine similarity between the CLIP image
  embedding of the object's crop (its visible box, padded square) and the embeddings of the
  concept's cut-outs on grey; the best match counts.

An item with no failed check is auto-kept, otherwise auto-rejected with one reason per
failure. Scores go to DatasetItem.scores as "<check>:<concept id>".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.dataset.compose import Composition
from engine.masks import dilate, mask_box

if TYPE_CHECKING:
    from PIL import Image

GREY = (128, 128, 128)


@dataclass(frozen=True)
class QualityThresholds:
    min_visible_fraction: float = 0.5
    min_visible_area: float = 0.002
    max_seam_edges: float = 3.0
    max_seam_colour: float = 60.0
    min_clip_similarity: float = 0.7


@dataclass(frozen=True)
class QualityReport:
    scores: dict[str, float] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()

    @property
    def kept(self) -> bool:
        return not self.reasons

    @property
    def review_state(self) -> str:
        return "auto-kept" if self.kept else "auto-rejected"

    @property
    def reasons_text(self) -> str:
        return "; ".join(self.reasons)


# --------------------------------------------------------------------------- checks


def visibility(composition: Composition, concept_id: int) -> tuple[float, float]:
    """(visible fraction of the pasted object, visible fraction of the canvas)."""
    visible = int(composition.concept_masks[concept_id].sum())
    placed = composition.placed_area.get(concept_id, 0)
    canvas = composition.keep_mask.size
    return (visible / placed if placed else 0.0), visible / canvas


def _gradient(luma: np.ndarray) -> np.ndarray:
    grad = np.zeros_like(luma)
    grad[:, :-1] += np.abs(np.diff(luma, axis=1))
    grad[:-1, :] += np.abs(np.diff(luma, axis=0))
    return grad


def seam_scores(image: np.ndarray, composition: Composition, concept_id: int,
                width: int) -> tuple[float, float]:
    """(seam-edges ratio, seam-colour distance) around one concept; see the module doc."""
    keep = composition.keep_mask
    mask = composition.concept_masks[concept_id]
    if not mask.any():
        return 0.0, 0.0
    width = max(2, width)
    pixels = image.astype(np.float32)
    luma = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    grad = _gradient(luma)
    near = dilate(mask, 2 + width) & ~dilate(keep, 2)
    outer = dilate(mask, 2 + 2 * width) & ~dilate(keep, 2 + width)
    far = ~dilate(keep, 2 + 3 * width)
    if not near.any():
        return 0.0, 0.0
    baseline = float(grad[far].mean()) if far.any() else float(grad[~keep].mean())
    edges = float(grad[near].mean()) / max(2.0, baseline)
    colour = 0.0
    if outer.any():
        colour = float(np.linalg.norm(pixels[near].mean(axis=0) - pixels[outer].mean(axis=0)))
    return edges, colour


def _square_on_grey(image: Image.Image) -> Image.Image:
    from PIL import Image

    side = max(image.size)
    canvas = Image.new("RGB", (side, side), GREY)
    rgba = image.convert("RGBA")
    canvas.paste(rgba, ((side - image.width) // 2, (side - image.height) // 2), rgba)
    return canvas


class ClipJudge:
    """CLIP image similarity between an object's crop and its concept's cut-outs."""

    def __init__(self, model: Any, preprocess: Any, device: str = "cpu",
                 test_model: bool = False) -> None:
        self.model = model
        self.preprocess = preprocess
        self.device = device
        # A test profile's CLIP has random weights: its scores say nothing, and say so.
        self.test_model = test_model
        self._references: dict[int, Any] = {}

    def embed(self, images: Sequence[Image.Image]) -> Any:
        import torch

        batch = torch.stack([self.preprocess(_square_on_grey(im)) for im in images])
        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode():
            features = self.model.encode_image(batch.to(self.device, dtype)).float()
        return torch.nn.functional.normalize(features, dim=-1)

    def add_references(self, concept_id: int, cutouts: Sequence[Image.Image]) -> None:
        if concept_id not in self._references and cutouts:
            self._references[concept_id] = self.embed(cutouts)

    def similarity(self, concept_id: int, crop: Image.Image) -> float | None:
        references = self._references.get(concept_id)
        if references is None:
            return None
        return float((self.embed([crop]) @ references.T).max())


# --------------------------------------------------------------------------- the item


def assess(composition: Composition, image: Image.Image, names: Mapping[int, str],
           thresholds: QualityThresholds = QualityThresholds(),
           judge: ClipJudge | None = None, seam_width: int = 2) -> QualityReport:
    """Check every concept of a finished item; `names` maps concept id to its token."""
    pixels = np.asarray(image.convert("RGB"))
    scores: dict[str, float] = {}
    reasons: list[str] = []
    for concept_id in sorted(composition.concept_masks):
        name = names.get(concept_id, f"concept {concept_id}")
        fraction, area = visibility(composition, concept_id)
        scores[f"visible:{concept_id}"] = round(fraction, 4)
        if fraction < thresholds.min_visible_fraction or area < thresholds.min_visible_area:
            reasons.append(f"{name} is mostly hidden ({fraction:.0%} visible, "
                           f"{area:.1%} of the picture)")
            continue
        edges, colour = seam_scores(pixels, composition, concept_id, seam_width)
        scores[f"seam-edges:{concept_id}"] = round(edges, 4)
        scores[f"seam-colour:{concept_id}"] = round(colour, 4)
        if edges > thresholds.max_seam_edges:
            reasons.append(f"visible seam around {name} (edges {edges:.1f}x the background)")
        elif colour > thresholds.max_seam_colour:
            reasons.append(f"colour fringe around {name} (distance {colour:.0f})")
        if judge is not None:
            box = mask_box(composition.concept_masks[concept_id])
            similarity = judge.similarity(concept_id, image.crop(box)) if box else None
            if similarity is not None:
                scores[f"clip:{concept_id}"] = round(similarity, 4)
                if similarity < thresholds.min_clip_similarity:
                    source = " from the test model, which says nothing" \
                        if judge.test_model else ""
                    reasons.append(f"{name} does not look like its photos "
                                   f"(CLIP similarity {similarity:.2f}{source})")
    return QualityReport(scores=scores, reasons=tuple(reasons))
