"""Each concept's mask before the first M-step (iteration 0), from the best thing there is:

1. what the user pointed at (a box or clicks): the segmentation stage's mask for it (SAM,
   or its labelled GrabCut fallback), one encoder pass for all the concepts of the photo;
2. else, with start_from_masks, the concept's current mask on the photo in the project:
   the previous run's result, or the mask the user fixed by hand ("fix a mask and re-run");
3. else the class word's cross-attention on the photo ("a photo of a cat and a dog" on the
   untouched model), through the E-step's post-processing without blending
   (engine.extract.estep), the masks of 1 and 2 kept as they are.

Given masks that overlap give the contested pixels to the smaller mask (the more specific
one). Two concepts of the same class word cannot be told apart by their word: each needs a
box or a mask (checked before the run starts, engine.extract.snapshot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import InputError
from engine.extract.estep import MaskSettings, estimate_masks
from engine.extract.mask_ops import Frame, labels_to_masks, masks_to_labels
from engine.extract.prompts import class_word_prompt

if TYPE_CHECKING:
    from engine.extract.attention import AttentionCapture
    from engine.extract.model import ExtractionModel
    from engine.extract.snapshot import ExtractSnapshot
    from engine.intake import DecodedImage
    from engine.project import Project


def given_masks(ctx: Any, project: Project, setup: Any, snapshot: ExtractSnapshot,
                image: DecodedImage, frame: Frame, method: str
                ) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """(concept index -> mask in the square, concept index -> where it came from) for the
    concepts with a box, clicks or a project mask to start from."""
    from engine.masks import read_mask, resize_mask

    masks: dict[int, np.ndarray] = {}
    sources: dict[int, str] = {}
    prompted = {i: c for i, c in enumerate(snapshot.concepts) if c.prompt}
    if prompted:
        from engine.segment import Prompt, load_segmenter_for, segment_concepts

        segmenter = load_segmenter_for(setup, method, ctx.models)
        ctx.log(f"Masks from your boxes and clicks: {segmenter.label}",
                "warning" if segmenter.fallback or segmenter.test_model else "info")
        results = segment_concepts(segmenter, image, snapshot.photo_sha256,
                                   {i: Prompt.from_dict(c.prompt or {})
                                    for i, c in prompted.items()})
        for i, result in results.items():
            if result.empty:
                raise InputError(f"{snapshot.photo_name}: found nothing for "
                                 f"{prompted[i].name} where you pointed; draw the box around "
                                 "it or click on it")
            masks[i], sources[i] = frame.mask_to_square(result.mask), result.method
    for i, concept in enumerate(snapshot.concepts):
        if i in masks or not concept.start_mask:
            continue
        path = project.abspath(concept.start_mask)
        try:
            mask = read_mask(str(path))
        except OSError as exc:
            raise InputError(f"The mask of {concept.name} is missing from the project "
                             f"({path})") from exc
        masks[i] = frame.mask_to_square(resize_mask(mask, (snapshot.width, snapshot.height)))
        sources[i] = "project mask"
    if len(masks) > 1:  # overlapping given masks: the smaller one keeps the pixels
        order = sorted(masks)
        exclusive = labels_to_masks(masks_to_labels(np.stack([masks[i] for i in order])),
                                    len(order))
        masks = {i: exclusive[k] for k, i in enumerate(order)}
    return masks, sources


def initial_masks(model: ExtractionModel, capture: AttentionCapture, snapshot: ExtractSnapshot,
                  square: np.ndarray, frame: Frame, given: dict[int, np.ndarray],
                  settings: MaskSettings, generator: Any) -> np.ndarray:
    """Masks [concepts, side, side]: the given ones, the rest from their class words."""
    count = len(snapshot.concepts)
    if len(given) == count:
        return np.stack([given[i] for i in range(count)])
    prompt = class_word_prompt(model.tokenizer, [c.class_word for c in snapshot.concepts])
    maps, _ = model.photo_attention(prompt, capture, generator)
    masks = estimate_masks(maps, square, frame.valid(), settings, kept=given)
    missing = [c.name for i, c in enumerate(snapshot.concepts) if not masks[i].any()]
    if missing:
        raise InputError(f"Could not find {', '.join(missing)} in {snapshot.photo_name} from "
                         "the class word; draw a box around it")
    return masks
