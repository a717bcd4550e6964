"""Segmentation: from a concept's photos to masks and RGBA cut-outs in the project.

Two segmenters share one interface (`auto`, `prompted`):

* SamSegmenter: segment-anything, loaded through engine.models.loaders (safe weights only).
  The image embedding (the expensive encoder pass) is cached per photo, keyed by the photo's
  content hash, so refining a mask with clicks or a box, or segmenting several concepts in one
  photo, costs only the small prompt decoder.
* GrabCutSegmenter (engine.segment.grabcut): the classical fallback when no SAM weights are
  present, labelled as such wherever its masks appear.

Prompts are in the photo's pixels (upright, as `load_photo` gives it). Masks are computed on a
work copy of at most WORK_SIDE pixels, cleaned (engine.segment.cleanup), and scaled back to the
photo's size. engine.segment.segment_photos stores the results in a project.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from engine.errors import InputError, ModelMissingError
from engine.masks import resize_mask
from engine.segment.cleanup import Box, Point, clean_mask
from engine.segment.jobs import METHODS

if TYPE_CHECKING:
    from engine.intake import DecodedImage
    from engine.jobs.stage_setup import StageSetup
    from engine.jobs.warm_cache import WarmCache

WORK_SIDE = 1024  # SAM's own input size; larger work copies only cost time
AUTO_BOX_MARGIN = 0.1


@dataclass(frozen=True)
class Prompt:
    """What the user pointed at: clicks (label 1 = object, 0 = not object) and/or a box."""

    points: tuple[Point, ...] = ()
    labels: tuple[int, ...] = ()
    box: Box | None = None

    def __post_init__(self) -> None:
        points = tuple((float(x), float(y)) for x, y in self.points)
        labels = tuple(int(v) for v in self.labels)
        if len(points) != len(labels):
            raise InputError(f"{len(points)} click(s) but {len(labels)} label(s)")
        if any(v not in (0, 1) for v in labels):
            raise InputError("A click's label is 1 (object) or 0 (not the object)")
        box = None
        if self.box is not None:
            x0, y0, x1, y1 = (float(v) for v in self.box)
            box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                raise InputError(f"The box {self.box} is too small to hold an object")
        if not points and box is None:
            raise InputError("A prompt needs a box or at least one click")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "box", box)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Prompt:
        return cls(points=tuple(data.get("points") or ()), labels=tuple(data.get("labels") or ()),
                   box=data.get("box"))

    def scaled(self, factor: float) -> Prompt:
        box = None if self.box is None else (
            self.box[0] * factor, self.box[1] * factor, self.box[2] * factor,
            self.box[3] * factor)
        return Prompt(tuple((x * factor, y * factor) for x, y in self.points), self.labels, box)

    @property
    def positive(self) -> list[Point]:
        return [p for p, v in zip(self.points, self.labels, strict=True) if v]

    @property
    def negative(self) -> list[Point]:
        return [p for p, v in zip(self.points, self.labels, strict=True) if not v]


@dataclass(frozen=True)
class SegmentResult:
    mask: np.ndarray  # bool (H, W) at the photo's resolution
    method: str  # "sam", "sam-refined", "fallback-grabcut", "fallback-grabcut-refined"
    fallback: bool
    label: str  # what made it, for people ("Classical fallback (GrabCut): ...")
    score: float | None = None  # SAM's own IoU estimate; None for the fallback
    low_res_logits: np.ndarray | None = None  # SAM: feed back as `previous_logits`

    @property
    def empty(self) -> bool:
        return not bool(self.mask.any())


class Segmenter(Protocol):
    name: str
    method: str
    refined_method: str
    fallback: bool
    test_model: bool
    label: str  # what makes the masks, for people
    detail: str  # why a fallback is in use, or ""

    def auto(self, image: np.ndarray, key: str) -> tuple[np.ndarray, float | None]: ...

    def prompted(self, image: np.ndarray, key: str, points: Sequence[Point] = (),
                 labels: Sequence[int] = (), box: Box | None = None,
                 previous: np.ndarray | None = None) -> tuple[np.ndarray, float | None, Any]: ...

    def forget(self, key: str | None = None) -> None: ...


# --------------------------------------------------------------------------- SAM


@dataclass(frozen=True)
class _Embedding:
    features: Any  # torch.Tensor (1, C, h, w)
    original_size: tuple[int, int]
    input_size: tuple[int, int]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def foreground_score(mask: np.ndarray, predicted_iou: float) -> float:
    """How likely a candidate is "the one thing in the photo": SAM's own quality estimate,
    times priors for a photo of one object — it fills 5-85% of the frame, sits near the
    centre, and does not run round the whole border (that is the background)."""
    h, w = mask.shape
    area = float(mask.mean())
    if area == 0.0:
        return 0.0
    area_term = min(1.0, area / 0.05) * min(1.0, (1.0 - area) / 0.15)
    ys, xs = np.nonzero(mask)
    off_centre = float(np.hypot(xs.mean() / w - 0.5, ys.mean() / h - 0.5) / np.hypot(0.5, 0.5))
    border = float(np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]]).mean())
    return max(predicted_iou, 0.01) * area_term * (1 - 0.5 * off_centre) * (1 - 0.7 * border)


class SamSegmenter:
    """segment-anything with an LRU cache of image embeddings keyed by photo hash."""

    name = "sam"
    method = "sam"
    refined_method = "sam-refined"
    fallback = False
    detail = ""

    def __init__(self, sam: Any, *, label: str = "SAM", test_model: bool = False,
                 max_cached: int = 8) -> None:
        from segment_anything import SamPredictor

        self.predictor = SamPredictor(sam)
        self.label = label
        self.test_model = test_model
        self.max_cached = max_cached
        self.encoder_runs = 0  # how often the expensive encoder ran (tests, benchmarks)
        self._cache: OrderedDict[str, _Embedding] = OrderedDict()
        self._dense_pe: Any = None  # the prompt encoder's positional grid, the same every time

    def forget(self, key: str | None = None) -> None:
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(key, None)

    def is_cached(self, key: str, shape: tuple[int, int]) -> bool:
        entry = self._cache.get(key)
        return entry is not None and entry.original_size == tuple(shape)

    def embed(self, image: np.ndarray, key: str) -> None:
        """Make `image` the predictor's current image, running the encoder only if needed."""
        p = self.predictor
        entry = self._cache.get(key)
        if entry is not None and entry.original_size == image.shape[:2]:
            self._cache.move_to_end(key)
            p.features, p.original_size, p.input_size = (
                entry.features, entry.original_size, entry.input_size)
            p.is_image_set = True
            return
        p.set_image(np.ascontiguousarray(image), image_format="RGB")
        self.encoder_runs += 1
        self._cache[key] = _Embedding(p.features, tuple(p.original_size), tuple(p.input_size))
        while len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)

    def _decode(self, points: Sequence[Point] = (), labels: Sequence[int] = (),
                box: Any = None, mask_input: np.ndarray | None = None,
                multimask: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(low-res logits (N, 256, 256), predicted IoUs (N,)) for the current image.

        SamPredictor.predict would upscale every candidate to the photo's size in torch (a
        third of a ViT-B refinement on CPU); we upscale only the one we keep.
        """
        import torch

        p = self.predictor
        model, dev = p.model, p.device
        pts = None
        if len(points):
            coords = p.transform.apply_coords(np.asarray(points, np.float32), p.original_size)
            pts = (torch.as_tensor(coords, dtype=torch.float, device=dev)[None],
                   torch.as_tensor(np.asarray(labels), dtype=torch.int, device=dev)[None])
        boxes = None
        if box is not None:
            moved = p.transform.apply_boxes(np.asarray(box, np.float32), p.original_size)
            boxes = torch.as_tensor(moved, dtype=torch.float, device=dev).reshape(1, 4)
        masks = None
        if mask_input is not None:
            masks = torch.as_tensor(mask_input, dtype=torch.float, device=dev).reshape(
                1, 1, *mask_input.shape[-2:])
        with torch.inference_mode():
            if self._dense_pe is None:
                self._dense_pe = model.prompt_encoder.get_dense_pe()
            sparse, dense = model.prompt_encoder(points=pts, boxes=boxes, masks=masks)
            low, iou = model.mask_decoder(
                image_embeddings=p.features, image_pe=self._dense_pe,
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                multimask_output=multimask)
        return low[0].float().cpu().numpy(), iou[0].float().cpu().numpy()

    def _valid_region(self, low_res: np.ndarray) -> np.ndarray:
        """The part of low-res logits that covers the image (SAM pads to a square)."""
        side = self.predictor.model.image_encoder.img_size
        h, w = self.predictor.input_size
        lh, lw = low_res.shape[-2:]
        return low_res[..., : max(1, round(h * lh / side)), : max(1, round(w * lw / side))]

    def _upscale(self, low_res: np.ndarray) -> np.ndarray:
        """Logits at the image's size, the way Sam.postprocess_masks computes them."""
        from engine.segment.cleanup import _cv2

        cv2 = _cv2()
        side = self.predictor.model.image_encoder.img_size
        h, w = self.predictor.input_size
        oh, ow = self.predictor.original_size
        padded = cv2.resize(low_res.astype(np.float32), (side, side),
                            interpolation=cv2.INTER_LINEAR)[:h, :w]
        return cv2.resize(padded, (ow, oh), interpolation=cv2.INTER_LINEAR)

    def auto(self, image: np.ndarray, key: str) -> tuple[np.ndarray, float | None]:
        """Best of SAM's candidates for a centre box and a centre click."""
        self.embed(image, key)
        h, w = image.shape[:2]
        box = [AUTO_BOX_MARGIN * w, AUTO_BOX_MARGIN * h,
               (1 - AUTO_BOX_MARGIN) * w, (1 - AUTO_BOX_MARGIN) * h]
        by_box, iou_box = self._decode(box=box)
        by_click, iou_click = self._decode(points=[(w / 2, h / 2)], labels=[1])
        logits = np.concatenate([by_box, by_click])
        scores = [float(v) for v in np.concatenate([iou_box, iou_click])]
        # The priors are about shape and place, so the low-res masks are enough to rank.
        ranked = [foreground_score(self._valid_region(m) > 0, v)
                  for m, v in zip(logits, scores, strict=True)]
        best = int(np.argmax(ranked)) if max(ranked) > 0 else int(np.argmax(scores))
        return _sigmoid(self._upscale(logits[best])), scores[best]

    def prompted(self, image: np.ndarray, key: str, points: Sequence[Point] = (),
                 labels: Sequence[int] = (), box: Box | None = None,
                 previous: np.ndarray | None = None,
                 ) -> tuple[np.ndarray, float | None, np.ndarray]:
        """Mask for clicks/box; `previous` is the low-res logits of the last refinement."""
        self.embed(image, key)
        # One click alone is ambiguous (the cat's eye, face or whole cat): ask for 3 answers.
        multimask = box is None and len(points) == 1
        low_res, iou = self._decode(points, labels, box, previous, multimask)
        best = int(np.argmax(iou))
        return _sigmoid(self._upscale(low_res[best])), float(iou[best]), low_res[best]


# --------------------------------------------------------------------------- choosing


def load_segmenter_for(setup: StageSetup, method: str = "auto",
                       models: WarmCache | None = None) -> Segmenter:
    """The segmenter to use; a loaded SAM stays warm in `models` (the worker's cache).

    method "auto": SAM if its weights are here and real, else the labelled GrabCut fallback
    (a test profile's SAM has random weights: its masks are noise, GrabCut's are real cut-outs);
    "sam": SAM or ModelMissingError; "fallback": always GrabCut.
    """
    if method not in METHODS:
        raise InputError(f"Segmentation method must be one of {', '.join(METHODS)}, "
                         f"got {method!r}")
    prof = setup.profile
    if method == "fallback":
        from engine.segment.grabcut import GrabCutSegmenter

        return GrabCutSegmenter(reason="chosen instead of SAM")
    if method == "auto" and prof.test_models and not setup.overrides.get("segmenter"):
        from engine.segment.grabcut import GrabCutSegmenter

        return GrabCutSegmenter(reason=f"the {prof.name!r} profile's SAM is a test model "
                                       "(random weights, its masks would be noise)")
    # SAM is small enough to run in fp32 everywhere; half precision only costs accuracy.
    key = replace(setup.model_key("segmenter", setup.overrides.get("segmenter", "")),
                  dtype="float32")
    warm = models.get(key) if models is not None else None
    if warm is not None:
        return warm
    try:
        path = setup.role_path("segmenter")
    except ModelMissingError as exc:
        if method == "sam":
            raise
        from engine.segment.grabcut import GrabCutSegmenter

        # Not cached: once the weights are downloaded, the next job picks SAM up.
        return GrabCutSegmenter(
            reason=f"no SAM weights for profile {prof.name!r} (`mycanvas models download "
                   f"{prof.name}` gets them)", detail=str(exc))

    def load() -> SamSegmenter:
        return _load_sam(prof, path, setup.device_name, bool(setup.overrides.get("segmenter")))

    return models.load(key, load) if models is not None else load()


def _load_sam(prof: Any, path: Any, device: str, user_weights: bool) -> SamSegmenter:
    from engine.models.loaders import load_segmenter

    spec = prof.role("segmenter")
    # A folder or file the user chose says its own architecture (config.json, or the weights'
    # shapes); the profile's arch describes only the profile's own download.
    arch = None if user_weights else spec.arch
    sam = load_segmenter(path, arch=arch, device=device, dtype="float32")
    if prof.test_models:
        label = f"SAM from the {prof.name!r} test profile: random weights, masks are noise"
    else:
        label = f"SAM ({arch or 'the model set in Settings'}, profile {prof.name!r})"
    return SamSegmenter(sam, label=label, test_model=prof.test_models)


# --------------------------------------------------------------------------- one photo


def _work_copy(image: DecodedImage) -> tuple[np.ndarray, float]:
    """The photo at most WORK_SIDE pixels long, as an array; a larger photo is scaled down
    by PIL from the decoded image, never copied whole into numpy first."""
    from PIL import Image

    view = image.rgb_on_white()
    w, h = view.size
    scale = min(1.0, WORK_SIDE / max(h, w))
    if scale >= 1.0:
        return np.asarray(view), 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(view.resize(size, Image.Resampling.BOX)), scale


def _result(segmenter: Segmenter, soft: np.ndarray, prompt: Prompt | None, size: tuple[int, int],
            method: str, score: float | None, low_res: Any = None) -> SegmentResult:
    hard = soft > 0.5
    if prompt is None:
        hard = clean_mask(hard)
    else:
        hard = clean_mask(hard, positive=prompt.positive, negative=prompt.negative, box=prompt.box)
    # The mask is made on the bounded work copy and scaled up in uint8 (a 48-megapixel photo
    # would need ~1 GB of float arrays otherwise).
    return SegmentResult(mask=resize_mask(hard, size), method=method,
                         fallback=segmenter.fallback, label=segmenter.label, score=score,
                         low_res_logits=None if low_res is None else np.asarray(low_res))


def segment_image(segmenter: Segmenter, image: DecodedImage, key: str,
                  prompt: Prompt | None = None, previous_mask: np.ndarray | None = None,
                  previous_logits: np.ndarray | None = None) -> SegmentResult:
    """Foreground of `image` ("a photo of one thing"), or the object a prompt points at.

    `key` names the image for the embedding cache (the photo's sha256). `previous_mask`
    (photo size) seeds GrabCut; `previous_logits` (from the last SAM result) seeds SAM.
    """
    work, scale = _work_copy(image)
    if prompt is None:
        soft, score = segmenter.auto(work, key)
        return _result(segmenter, soft, None, image.size, segmenter.method, score)
    local = prompt.scaled(scale)
    previous: np.ndarray | None = None
    if segmenter.fallback and previous_mask is not None:
        previous = resize_mask(previous_mask, (work.shape[1], work.shape[0]))
    elif not segmenter.fallback:
        previous = previous_logits
    soft, score, low_res = segmenter.prompted(work, key, local.points, local.labels, local.box,
                                              previous)
    return _result(segmenter, soft, local, image.size, segmenter.refined_method, score, low_res)


def _box_share(prompt: Prompt, shape: tuple[int, ...]) -> float:
    """The part of the image a prompt's box covers (1 without a box)."""
    if prompt.box is None:
        return 1.0
    x0, y0, x1, y1 = prompt.box
    return min(1.0, (x1 - x0) * (y1 - y0) / float(shape[0] * shape[1]))


def segment_concepts(segmenter: Segmenter, image: DecodedImage, key: str,
                     prompts: Mapping[int, Prompt]) -> dict[int, SegmentResult]:
    """One mask per concept from the same photo (one encoder pass). The masks never overlap:
    a pixel two concepts claim goes to the one the segmenter is surer of, and a tie (GrabCut
    answers 0 or 1) to the smaller box, the more specific prompt."""
    work, scale = _work_copy(image)
    ids = list(prompts)
    local = [prompts[cid].scaled(scale) for cid in ids]
    answers = [segmenter.prompted(work, key, p.points, p.labels, p.box) for p in local]
    softs = [a[0] for a in answers]
    if len(ids) > 1:
        bias = [1e-3 * (1.0 - _box_share(p, work.shape)) for p in local]
        winner = np.argmax(np.stack([s + b for s, b in zip(softs, bias, strict=True)]), axis=0)
        softs = [np.where(winner == i, s, 0.0) for i, s in enumerate(softs)]
    results = [_result(segmenter, soft, p, image.size, segmenter.refined_method, a[1], a[2])
               for soft, p, a in zip(softs, local, answers, strict=True)]
    if len(ids) > 1:
        # Cleaning fills holes and smooths edges, which can take back a neighbour's pixels.
        from engine.segment.cleanup import _cv2

        cv2 = _cv2()
        owner = cv2.resize(winner.astype(np.uint8), image.size, interpolation=cv2.INTER_NEAREST)
        claimed = np.sum([r.mask for r in results], axis=0) > 1
        results = [replace(r, mask=r.mask & ~(claimed & (owner != i)))
                   for i, r in enumerate(results)]
    return dict(zip(ids, results, strict=True))
