"""The metrics of a generated picture, defined exactly so that a number means one thing.

Gen4Gen names CP-CLIP and TI-CLIP and publishes no code for them; these definitions are ours.

Common ground
  * CLIP is the profile's "clip" role (open_clip; ViT-B/32 in the sd15 profile). An
    embedding E(x) is CLIP's image or text feature divided by its L2 norm, and
    cos(a, b) = E(a) · E(b), in [-1, 1].
  * A picture is embedded through CLIP's own preprocessing (short side resized, centre
    crop). A crop or a reference cut-out is first centred on a grey (128, 128, 128) square as
    wide as its longer side, a cut-out's transparent pixels becoming that grey: nothing of it
    is cropped away, and crops and references are prepared alike.
  * A picture's concepts are the project's concepts whose token its prompt names, in the
    order the prompt first names them; a concept named twice counts once.
  * A concept's references are the cut-outs of the current masks of its photos (a concept
    with no cut-out yet uses its whole photos; the score's details say which).

TI-CLIP, per picture (text-image alignment; catches a model that forgot language while it
learned the concepts):
    TI-CLIP = cos(picture, plain prompt)
  The plain prompt is the prompt with every concept token replaced by its class word: the
  pair "<token> class" becomes "class" (as the prompt spells it, in any case), a token
  standing alone becomes its class word, any other <...> token (Gen4Gen's global
  composition token) is dropped, and white space is squeezed: "a photo of <mochi> cat and
  <cup> mug" → "a photo of cat and mug".

CP-CLIP, per concept and per picture (concept preservation):
  1. Detect. OWL-ViT (the "detector" role; B/32 in sd15) is asked, per class word of the
     picture's concepts, for "a photo of a <class word>". The picture is padded to a square
     at its right and bottom with grey (OWL-ViT's convention), so boxes map back to its
     pixels. A box's confidence for a class word is the sigmoid of its logit for that query.
     Boxes with confidence >= the threshold are kept and overlapping ones (IoU > 0.5) merged
     into the most confident (non-maximum suppression).
  2. Assign. The n concepts sharing a class word compete for that word's n most confident
     boxes: every (concept, box) pair is scored as in 3, then pairs are taken greedily,
     highest first, each box and each concept once. With one concept per class word this is
     simply the best box above the threshold.
  3. Score. A concept with a box scores the mean over its references of
     cos(crop, reference), the crop being the picture inside the box (corners rounded
     outward, clipped to the picture). A concept without a box (nothing above the threshold,
     or fewer boxes than concepts sharing the word) scores 0.
  4. The picture's CP-CLIP is the mean over its concepts; a prompt naming no concept has no
     CP-CLIP. Each concept's score is stored with its box ([x, y, w, h] in 0..1 of the
     picture), the detector's confidence and the threshold.
  The default threshold is 0.1, the operating point of OWL-ViT's published examples. No
  labelled generated pictures exist here to tune it, so it is a parameter, and stored with
  every score, so a tuned value never mixes silently with old numbers.

Custom Diffusion's evaluation pair (CustomConcept101), to set our numbers beside published
ones (multi-concept Custom Diffusion: text 0.757–0.763, image 0.658–0.668):
    cd-text  = 2.5 · max(0, TI-CLIP)        CLIPScore (Hessel et al. 2021, w = 2.5), the
                                            scale of CustomConcept101's text-alignment
    cd-image = mean over the picture's concepts of the mean over the concept's photos of
               cos(picture, photo)          whole picture against whole photos
  Their CLIP is OpenAI's ViT-B/32 and ours the profile's (LAION ViT-B/32 in sd15), so the
  comparison is close, not exact.

Precision: scoring computes in float32 even on a CPU whose device plan computes in bf16
(engine.device): a score is a measurement, and the same picture must get the same number on
every machine. It costs about 1.1 s per picture at full size on 2 cores.

Everything here is plain arithmetic on embeddings (numpy), so tests can check it exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.score.definitions import CLIPSCORE_WEIGHT, DEFAULT_THRESHOLD, NMS_IOU

__all__ = ["CLIPSCORE_WEIGHT", "DEFAULT_THRESHOLD", "GREY", "NMS_IOU", "ConceptWord",
           "assign_greedy", "cd_text", "crop_corners", "mean_similarity",
           "picture_mean", "plain_prompt"]

GREY = (128, 128, 128)

_ANY_TOKEN = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True)
class ConceptWord:
    """A concept as the metrics see it: its id, token and class word."""

    concept_id: int
    token: str
    class_word: str


def plain_prompt(prompt: str, concepts: Sequence[ConceptWord]) -> str:
    """The prompt TI-CLIP reads: tokens replaced by class words (see the module doc)."""
    text = prompt
    for c in concepts:
        pair = re.compile(re.escape(c.token) + r"\s+(" + re.escape(c.class_word) + r")\b",
                          re.IGNORECASE)
        text = pair.sub(lambda m: m.group(1), text)
        text = text.replace(c.token, c.class_word)
    text = _ANY_TOKEN.sub(" ", text)
    text = " ".join(text.split())
    return re.sub(r"\s+([,.;:!?])", r"\1", text)


def mean_similarity(embedding: np.ndarray, references: np.ndarray) -> float:
    """Mean over the references (rows) of cos(embedding, reference); embeddings are unit."""
    refs = np.atleast_2d(references)
    return float(np.mean(refs @ np.asarray(embedding)))


def assign_greedy(similarity: np.ndarray) -> list[int | None]:
    """For each concept (row), the box (column) it gets: pairs taken highest similarity
    first, each row and column once; a concept left without a box gets None."""
    sim = np.asarray(similarity, dtype=np.float64)
    rows, cols = sim.shape if sim.ndim == 2 else (0, 0)
    out: list[int | None] = [None] * rows
    order = sorted(((sim[r, c], r, c) for r in range(rows) for c in range(cols)),
                   key=lambda t: (-t[0], t[1], t[2]))
    used_cols: set[int] = set()
    for _value, r, c in order:
        if out[r] is None and c not in used_cols:
            out[r] = c
            used_cols.add(c)
    return out


def picture_mean(values: Sequence[float]) -> float | None:
    """The mean over a picture's concepts; None when it has none."""
    return float(np.mean(values)) if len(values) else None


def cd_text(ti_clip: float) -> float:
    """CustomConcept101's text alignment from TI-CLIP: CLIPScore with w = 2.5."""
    return CLIPSCORE_WEIGHT * max(0.0, float(ti_clip))


def crop_corners(box: tuple[float, float, float, float], width: int, height: int
                 ) -> tuple[int, int, int, int] | None:
    """Pixel corners of a box: rounded outward, clipped to the picture; None if empty."""
    x0 = max(0, int(np.floor(box[0])))
    y0 = max(0, int(np.floor(box[1])))
    x1 = min(width, int(np.ceil(box[2])))
    y1 = min(height, int(np.ceil(box[3])))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None
