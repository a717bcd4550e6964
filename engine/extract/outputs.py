"""What a finished extraction leaves: the export and the concepts' masks in the project.

The export is the fine-tuning stage's, written by the same function
(engine.train.export_concepts): `pytorch_custom_diffusion_weights.safetensors`, one
`<token>.safetensors` per token, `mycanvas_concepts.json`. Generation reads either run kind
with one loader and plain diffusers loads it (tested). The manifest says kind "em-extract",
names the background token when there is one (it is no concept), and gives all prompt
strategies off: the run trained on "a photo of <mochi> cat and <rex> dog".

The final masks go on the project at the photo's full size, each on its concept's own record
of the photo, with a cut-out (method "em-extract"), through the segmentation stage's
`save_result`: the concept page, the mask editor and the dataset builder take them like any
other mask. Labels from the model's square are upsampled to a work copy of the photo (at
most FINAL_SIDE a side), refined there once more by the dense CRF on the photo's own
colours, then scaled to the photo. A mask equal to the concept's current one is not stored
again (a resumed run that already stored it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from engine.extract.crf import crf_probabilities
from engine.extract.mask_ops import clean_labels, labels_to_masks, masks_to_labels
from engine.extract.prompts import PLAIN

if TYPE_CHECKING:
    from engine.extract.config import ExtractConfig
    from engine.extract.mask_ops import Frame
    from engine.extract.model import ExtractionModel
    from engine.extract.snapshot import ExtractSnapshot
    from engine.intake import DecodedImage
    from engine.models.profiles import Profile
    from engine.project import Project
    from engine.train import RunPaths

RUN_KIND_NAME = "em-extract"
FINAL_SIDE = 1024
MASK_METHOD = "em-extract"


def export_run(model: ExtractionModel, paths: RunPaths, run_id: int, cfg: ExtractConfig,
               snapshot: ExtractSnapshot, base_model: dict[str, Any], steps: int,
               trainer: Any) -> None:
    from engine.train import export_concepts, training_prompt

    concepts = [c.ref for c in snapshot.concepts]
    manifest = {
        "kind": RUN_KIND_NAME, "run_id": run_id, "steps": steps,
        "resolution": int(cfg.resolution or 0), "dataset_snapshot": snapshot.snapshot_id,
        "base_model": base_model,
        "concepts": [{"name": c.name, "token": c.token, "class_word": c.class_word}
                     for c in snapshot.concepts],
        "global_token": None, "background_token": snapshot.background_token,
        "example_prompt": training_prompt(concepts, "", PLAIN),
        "prompt_strategies": {"global_token": PLAIN.global_token,
                              "repeat_concept_tokens": PLAIN.repeat_concept_tokens,
                              "separate_background": PLAIN.separate_background},
        "photo": {"name": snapshot.photo_name, "sha256": snapshot.photo_sha256},
        "iterations": trainer.iteration, "converged": trainer.converged_at is not None,
        "config": cfg.to_dict(), "training_precision": model.precision.computes_in,
    }
    export_concepts(model, paths.export, manifest)


def photo_masks(rgb: Any, frame: Frame, masks: np.ndarray, crf_iterations: int) -> np.ndarray:
    """The run's masks [n, side, side] at the photo's full size [n, height, width]."""
    import cv2

    from engine.masks import resize_mask

    count = masks.shape[0]
    labels = frame.crop(masks_to_labels(masks))
    scale = min(1.0, FINAL_SIDE / max(frame.width, frame.height))
    w, h = max(1, round(frame.width * scale)), max(1, round(frame.height * scale))
    onehot = np.stack([labels == k for k in range(count + 1)]).astype(np.float32)
    soft = np.stack([cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR) for p in onehot])
    work = np.asarray(rgb.convert("RGB").resize((w, h)))
    if crf_iterations:
        # The upsampled labels, softened (a sure pixel keeps ~0.9 for its label): inside the
        # masks they stand, along their edges (soft from the upsampling) the colours decide.
        probs = 0.1 / count + 0.8 * soft
        soft = crf_probabilities(work, probs, crf_iterations)
    fine = clean_labels(soft.argmax(axis=0).astype(np.int32), count)
    return np.stack([resize_mask(m, (frame.width, frame.height))
                     for m in labels_to_masks(fine, count)])


def store_final_masks(project: Project, snapshot: ExtractSnapshot, image: DecodedImage,
                      frame: Frame, masks: np.ndarray, run_id: int, cfg: ExtractConfig,
                      profile: Profile) -> list[dict[str, Any]]:
    """Each concept's final mask and cut-out on the project, labelled with the `profile` whose
    model's attention made it; one summary dict per concept."""
    from engine.masks import mask_png
    from engine.segment import SegmentResult, save_result

    full = photo_masks(image.rgb_on_white(), frame, masks, cfg.crf_iterations)
    out = []
    for concept, mask in zip(snapshot.concepts, full, strict=True):
        photo = project.photo(concept.photo_id)
        current = project.current_masks(concept.concept_id).get(photo.id)
        rel = project.put_bytes(mask_png(mask), "png") if mask.any() else None
        if rel is None:
            mask_id = None  # nothing found: the concept keeps the mask it had, if any
        elif current is not None and current.file == rel and current.method == MASK_METHOD:
            mask_id = current.id
        else:
            result = SegmentResult(mask=mask, method=MASK_METHOD, fallback=False,
                                   label=f"EM extraction, run {run_id}")
            mask_id = save_result(project, photo, concept.concept_id, result, image,
                                  profile=profile.name, test_model=profile.test_models).id
        out.append({"concept_id": concept.concept_id, "name": concept.name,
                    "token": concept.token, "class_word": concept.class_word,
                    "photo_id": photo.id, "mask_id": mask_id, "area": float(mask.mean())})
    return out
