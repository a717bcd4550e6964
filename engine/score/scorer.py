"""Score a batch of pictures as engine/score/metrics.py defines it: one detector pass, one
CLIP pass for the pictures and every candidate crop together, one for the plain prompts, then
the assignment of boxes to concepts and the arithmetic.

Reference embeddings (each concept's cut-outs and photos) are computed once and kept in a
cache keyed by file, so the next batch, and the worker's next score job, reuse them.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import InputError
from engine.project import Project, Score
from engine.score.detection import Detection, OwlDetector, detector_query
from engine.score.embedding import ClipEmbedder, on_grey_square
from engine.score.metrics import (
    ConceptWord,
    assign_greedy,
    cd_text,
    crop_corners,
    mean_similarity,
    picture_mean,
    plain_prompt,
)

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class References:
    """A concept's reference embeddings (unit rows)."""

    embeddings: np.ndarray  # what its crops are compared with: cut-outs, or photos
    kind: str  # "cut-outs" or "photos"
    photos: np.ndarray  # its whole photos (cd-image)


class ReferenceBank:
    """Each concept's references, embedded once; `cache` maps (kind, file) -> embedding."""

    def __init__(self, project: Project, embedder: ClipEmbedder,
                 cache: MutableMapping[tuple[str, str], np.ndarray] | None = None) -> None:
        self.project = project
        self.embedder = embedder
        self.cache = cache if cache is not None else {}
        self._concepts: dict[int, References] = {}

    def of(self, concept_id: int) -> References:
        if concept_id not in self._concepts:
            self._concepts[concept_id] = self._load(concept_id)
        return self._concepts[concept_id]

    def _load(self, concept_id: int) -> References:
        from engine.intake import load_photo

        current = self.project.current_masks(concept_id)
        cutouts = [current[pid].cutout_file for pid in sorted(current)
                   if current[pid].cutout_file]
        photos = self.project.photos(concept_id)
        photo_rows = self._embed("photo", [p.file for p in photos],
                                 lambda i: load_photo(self.project, photos[i]).rgb, crop=False)
        if cutouts:
            rows = self._embed("cutout", [str(c) for c in cutouts],
                               lambda i: self._cutout(str(cutouts[i])), crop=True)
            return References(rows, "cut-outs", photo_rows)
        return References(photo_rows, "photos", photo_rows)

    def _embed(self, kind: str, files: list[str], load: Any, crop: bool) -> np.ndarray:
        missing = [i for i, f in enumerate(files) if (kind, f) not in self.cache]
        if missing:
            images = [load(i) for i in missing]
            rows = self.embedder.crops(images) if crop else self.embedder.images(images)
            for i, row in zip(missing, rows, strict=True):
                self.cache[(kind, files[i])] = row
        return np.array([self.cache[(kind, f)] for f in files]) if files else np.zeros((0, 0))

    def _cutout(self, rel: str) -> Image.Image:
        from engine.masks import read_cutout

        image = read_cutout(self.project.abspath(rel), rel)
        if image is None:
            raise InputError(f"The cut-out {rel} is empty (fully transparent)")
        return image


@dataclass(frozen=True)
class Picture:
    """What one picture is scored from."""

    generation_id: int
    image: Image.Image
    prompt: str
    concepts: tuple[ConceptWord, ...]


@dataclass(frozen=True)
class ConceptResult:
    concept_id: int
    cp_clip: float
    box: tuple[float, float, float, float] | None  # x, y, w, h in 0..1 of the picture
    confidence: float | None
    cd_image: float | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PictureResult:
    generation_id: int
    plain_prompt: str
    ti_clip: float
    cd_text: float
    cp_clip: float | None
    cd_image: float | None
    concepts: tuple[ConceptResult, ...]

    def rows(self, model: str, test_model: bool, threshold: float) -> list[Score]:
        """The catalogue rows of this picture's scores."""

        def row(metric: str, value: float, **how: Any) -> Score:
            return Score(generation_id=self.generation_id, metric=metric, value=value,
                         model=model, test_model=test_model, **how)

        rows = [row("ti-clip", self.ti_clip, details={"plain_prompt": self.plain_prompt}),
                row("cd-text", self.cd_text)]
        if self.cp_clip is not None:
            rows.append(row("cp-clip", self.cp_clip, details={"threshold": threshold}))
        if self.cd_image is not None:
            rows.append(row("cd-image", self.cd_image))
        for c in self.concepts:
            rows.append(row("cp-clip", c.cp_clip, concept_id=c.concept_id, box=c.box,
                            confidence=c.confidence, details={"threshold": threshold,
                                                               **c.details}))
            if c.cd_image is not None:
                rows.append(row("cd-image", c.cd_image, concept_id=c.concept_id))
        return rows


@dataclass
class _Group:
    """The concepts of one picture sharing a class word, and that word's candidate boxes."""

    members: list[ConceptWord]
    candidates: list[Detection]
    crop_rows: list[int]  # row of each candidate's crop in the batch's embeddings


class Scorer:
    """Scores batches of pictures with warm models; see the module doc."""

    def __init__(self, embedder: ClipEmbedder, detector: OwlDetector, references: ReferenceBank,
                 threshold: float) -> None:
        self.embedder = embedder
        self.detector = detector
        self.references = references
        self.threshold = threshold

    def score(self, pictures: Sequence[Picture]) -> list[PictureResult]:
        if not pictures:
            return []
        found = self.detector.detect([p.image for p in pictures],
                                     [[c.class_word for c in p.concepts] for p in pictures],
                                     self.threshold)
        crops: list[Image.Image] = []
        plans: list[dict[str, _Group]] = []
        for picture, boxes in zip(pictures, found, strict=True):
            groups: dict[str, _Group] = {}
            for concept in picture.concepts:
                groups.setdefault(concept.class_word, _Group([], [], [])).members.append(concept)
            for word, group in groups.items():
                for det in boxes.get(word, [])[:len(group.members)]:
                    corners = crop_corners(det.box, *picture.image.size)
                    if corners is None:
                        continue
                    group.candidates.append(det)
                    group.crop_rows.append(len(pictures) + len(crops))
                    crops.append(on_grey_square(picture.image.crop(corners)))
            plans.append(groups)
        # The pictures and every crop of the batch in one CLIP pass (chunked), the texts in one.
        embedded = self.embedder.images([p.image for p in pictures] + crops)
        texts = [plain_prompt(p.prompt, p.concepts) for p in pictures]
        text_rows = self.embedder.texts(texts)
        return [self._picture(p, i, plans[i], embedded, text_rows[i], texts[i])
                for i, p in enumerate(pictures)]

    def _picture(self, picture: Picture, index: int, groups: dict[str, _Group],
                 embedded: np.ndarray, text_row: np.ndarray, text: str) -> PictureResult:
        whole = embedded[index]
        ti = float(whole @ text_row)
        width, height = picture.image.size
        results: dict[int, ConceptResult] = {}
        for word, group in groups.items():
            refs = [self.references.of(m.concept_id) for m in group.members]
            sim = np.array([[mean_similarity(embedded[row], r.embeddings)
                             if len(r.embeddings) else 0.0 for row in group.crop_rows]
                            for r in refs]).reshape(len(group.members), len(group.crop_rows))
            chosen = assign_greedy(sim)
            for m, (member, ref) in enumerate(zip(group.members, refs, strict=True)):
                k = chosen[m]
                det = group.candidates[k] if k is not None else None
                box = None if det is None else (
                    det.box[0] / width, det.box[1] / height,
                    (det.box[2] - det.box[0]) / width, (det.box[3] - det.box[1]) / height)
                cd = mean_similarity(whole, ref.photos) if len(ref.photos) else None
                results[member.concept_id] = ConceptResult(
                    member.concept_id, float(sim[m, k]) if k is not None else 0.0, box,
                    det.confidence if det else None, cd,
                    {"query": detector_query(word), "references": len(ref.embeddings),
                     "reference_kind": ref.kind, "candidates": len(group.candidates)})
        concepts = tuple(results[c.concept_id] for c in picture.concepts)
        cds = [c.cd_image for c in concepts if c.cd_image is not None]
        return PictureResult(
            picture.generation_id, text, ti, cd_text(ti),
            picture_mean([c.cp_clip for c in concepts]),
            picture_mean(cds), concepts)
