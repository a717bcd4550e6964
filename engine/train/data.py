"""What a run trains on: a frozen snapshot of the dataset, and everything per item that does
not change from step to step, computed once.

The snapshot lists the accepted and auto-kept items (content-addressed files, so the listing
stays valid when the catalogue changes later) and is stored with the run; a resumed run
trains on exactly the same items. Its id is a hash of what it lists.

Cached per item: the VAE latent distribution (mean and std) of the image *and* of its mirror
image, the union of its object masks at latent resolution (mirrored too), and its tokenised
prompt. A step then only draws the latent sample, the noise and the timestep: the VAE never
runs during training.

Randomness is a function of (seed, step): the data order of every epoch and each step's
draws come from generators seeded from them, so a resumed run repeats an uninterrupted one
bit for bit without saving generator states.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError, first_line
from engine.masks import png_bytes
from engine.project import DatasetItem, Project
from engine.train.prompts import ConceptRef, concepts_in_caption, scene_from_caption

if TYPE_CHECKING:
    import torch
    from PIL import Image

TRAIN_STATES: tuple[str, ...] = ("auto-kept", "accepted")
SNAPSHOT_VERSION = 1
Progress = Callable[[int, int, str], None]


# --------------------------------------------------------------------------- snapshot


@dataclass(frozen=True)
class SnapshotConcept:
    id: int
    name: str
    token: str
    class_word: str

    @property
    def ref(self) -> ConceptRef:
        return ConceptRef(self.token, self.class_word)


@dataclass(frozen=True)
class SnapshotItem:
    item_id: int
    image_file: str
    mask_files: tuple[str, ...]
    tokens: tuple[str, ...]  # its concepts, in the order its caption names them
    scene: str
    token_caption: str | None


@dataclass(frozen=True)
class DatasetSnapshot:
    snapshot_id: str
    concepts: tuple[SnapshotConcept, ...]
    items: tuple[SnapshotItem, ...]

    def concept_refs(self, tokens: Sequence[str]) -> list[ConceptRef]:
        by_token = {c.token: c.ref for c in self.concepts}
        return [by_token[t] for t in tokens]

    def to_json(self) -> str:
        return json.dumps({"version": SNAPSHOT_VERSION, "snapshot_id": self.snapshot_id,
                           "concepts": [asdict(c) for c in self.concepts],
                           "items": [asdict(i) for i in self.items]}, indent=1,
                          ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, where: str) -> DatasetSnapshot:
        try:
            data = json.loads(text)
            concepts = tuple(SnapshotConcept(**c) for c in data["concepts"])
            items = tuple(SnapshotItem(**{**i, "mask_files": tuple(i["mask_files"]),
                                          "tokens": tuple(i["tokens"])})
                          for i in data["items"])
            snapshot = cls(str(data["snapshot_id"]), concepts, items)
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{where}: not a readable dataset snapshot ({first_line(exc, 120)})"
                             "; this run cannot be resumed, start a new one") from exc
        if snapshot_id(concepts, items) != snapshot.snapshot_id:
            raise InputError(f"{where}: the dataset snapshot does not match its id (it was "
                             "changed); this run cannot be resumed, start a new one")
        return snapshot


def snapshot_id(concepts: Sequence[SnapshotConcept], items: Sequence[SnapshotItem]) -> str:
    canonical = json.dumps([[asdict(c) for c in concepts], [asdict(i) for i in items]],
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _item_scene(project: Project, item: DatasetItem, refs: Sequence[ConceptRef]) -> str:
    if item.layout_id is not None:
        try:
            return project.layout(item.layout_id).scene
        except InputError:
            pass  # the layout was deleted; the caption still says where
    return scene_from_caption(item.token_caption or item.caption, refs)


def built_with_test_models(item: DatasetItem) -> bool:
    """Whether the item was built on a profile of test models (its picture is noise), as its
    provenance says; an item that does not say, or names an unknown profile, counts as real."""
    from engine.models.profiles import made_with_test_models

    return made_with_test_models(item.provenance)


def take_snapshot(project: Project, *, test_pictures: bool = True) -> DatasetSnapshot:
    """The items a run trains on (auto-kept and accepted), with their concepts.

    `test_pictures`: whether items built with test models count. A run on a real profile
    leaves them out unless asked (TrainConfig.include_test_pictures): see the train job."""
    concepts = {c.id: c for c in project.concepts()}
    by_token = {c.token: c for c in concepts.values()}
    items: list[DatasetItem] = []
    for state in TRAIN_STATES:
        items += project.dataset_items(state)
    items.sort(key=lambda i: i.id or 0)
    if not items:
        raise InputError("The project has no accepted dataset items to train on: build the "
                         "dataset first (mycanvas build-dataset) and review it",
                         problem="The project has no accepted dataset items to train on.",
                         command="mycanvas build-dataset",
                         hint="build the dataset first and review it")
    if not test_pictures:
        real = [i for i in items if not built_with_test_models(i)]
        if not real:
            raise InputError(
                f"Every one of the {len(items)} kept dataset items was built with the test "
                "models (their pictures are noise), which a run on a real profile leaves out: "
                "build the dataset again on this profile, or include them "
                "(--include-test-pictures)")
        items = real
    all_refs = [ConceptRef(c.token, c.class_word) for c in concepts.values()]
    used: set[int] = set()
    snap_items: list[SnapshotItem] = []
    for item in items:
        caption = item.token_caption or ""
        ordered = [by_token[r.token].id for r in concepts_in_caption(caption, all_refs)]
        ordered += sorted(cid for cid in item.masks if cid not in ordered)
        if not ordered:
            raise InputError(f"Dataset item {item.id} names no concept (no token in its caption "
                             "and no object mask); reject it or rebuild it")
        used.update(ordered)
        refs = [concepts[cid] for cid in ordered]
        snap_items.append(SnapshotItem(
            item_id=int(item.id or 0), image_file=item.image_file,
            mask_files=tuple(item.masks[cid] for cid in sorted(item.masks)),
            tokens=tuple(c.token for c in refs),
            scene=_item_scene(project, item, [ConceptRef(c.token, c.class_word) for c in refs]),
            token_caption=item.token_caption))
    snap_concepts = tuple(SnapshotConcept(c.id, c.name, c.token, c.class_word)
                          for cid, c in sorted(concepts.items()) if cid in used)
    return DatasetSnapshot(snapshot_id(snap_concepts, snap_items), snap_concepts,
                           tuple(snap_items))


# --------------------------------------------------------------------------- randomness


def derived_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from the run seed and a label: independent streams per purpose."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def step_generator(seed: int, step: int, micro: int) -> torch.Generator:
    import torch

    return torch.Generator().manual_seed(derived_seed(seed, "step", step, micro))


@dataclass
class DataOrder:
    """Which item fills each batch slot: a fresh permutation per epoch, from (seed, epoch)."""

    count: int
    seed: int
    _orders: dict[int, list[int]] = field(default_factory=dict)

    def _order(self, epoch: int) -> list[int]:
        import torch

        if epoch not in self._orders:
            gen = torch.Generator().manual_seed(derived_seed(self.seed, "epoch", epoch))
            # Keep the last two: a batch may straddle an epoch boundary.
            self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
            self._orders[epoch] = torch.randperm(self.count, generator=gen).tolist()
        return self._orders[epoch]

    def indices(self, first_slot: int, size: int) -> list[int]:
        out = []
        for slot in range(first_slot, first_slot + size):
            epoch, position = divmod(slot, self.count)
            out.append(self._order(epoch)[position])
        return out


# --------------------------------------------------------------------------- pixels


def square_image(path: Path, resolution: int, mode: str = "RGB") -> Image.Image:
    """Resize the shorter side to `resolution` and centre-crop: what the model trains at."""
    from PIL import Image, ImageOps

    with Image.open(path) as opened:
        img = ImageOps.exif_transpose(opened).convert(mode)
    resample = Image.Resampling.BICUBIC if mode == "RGB" else Image.Resampling.BILINEAR
    return ImageOps.fit(img, (resolution, resolution), method=resample)


def to_pixels(images: Sequence[Image.Image]) -> torch.Tensor:
    import numpy as np
    import torch

    array = np.stack([np.asarray(img, dtype=np.float32) for img in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0


def encode_latent_stats(vae: Any, images: Sequence[Image.Image], device: Any, dtype: Any,
                        progress: Progress | None = None,
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of the VAE's latent distribution for each image and its mirror image:
    tensors [N, 2, C, h, w] in float32 on the CPU ([:, 1] is the mirror image)."""
    import torch

    means, stds = [], []
    with torch.no_grad():
        for i, image in enumerate(images):
            if progress:
                progress(i, len(images), "encoding images")
            pixels = to_pixels([image])
            both = torch.cat([pixels, pixels.flip(-1)]).to(device=device, dtype=dtype)
            dist = vae.encode(both).latent_dist
            means.append(dist.mean.float().cpu().contiguous())
            stds.append(dist.std.float().cpu().contiguous())
    return torch.stack(means), torch.stack(stds)


def latent_masks(project: Project, items: Sequence[SnapshotItem], resolution: int,
                 latent_side: int) -> torch.Tensor:
    """The union of each item's object masks, area-averaged to latent size, and mirrored:
    [N, 2, 1, h, w] in 0..1. An item without masks counts as all object."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    out = []
    for item in items:
        union = np.zeros((resolution, resolution), dtype=np.float32)
        for rel in item.mask_files:
            mask = square_image(project.abspath(rel), resolution, mode="L")
            union = np.maximum(union, np.asarray(mask, dtype=np.float32) / 255.0)
        if not item.mask_files:
            union[:] = 1.0
        small = F.interpolate(torch.from_numpy(union)[None, None], size=(latent_side,) * 2,
                              mode="area")[0]
        out.append(torch.stack([small, small.flip(-1)]))
    return torch.stack(out)


# --------------------------------------------------------------------------- class images


def class_image_folder(project: Project, model_key: str, class_word: str) -> Path:
    from engine.paths import safe_component

    return project.root / "runs" / "class-images" / model_key / safe_component(
        class_word, fallback="class")


def _readable_image(path: Path) -> bool:
    from PIL import Image

    if not path.is_file():
        return False
    try:
        with Image.open(path) as im:
            im.load()
    except Exception:
        return False
    return True


def ensure_class_images(project: Project, pipe: Any, class_word: str, count: int,
                        steps: int, resolution: int, seed: int, model_key: str,
                        progress: Progress | None = None) -> list[Path]:
    """`count` images of the class made by the base model, kept in the project and reused
    by later runs (same model, resolution and steps); missing or unreadable ones are made
    now (they are a cache: a damaged one is replaced, not an error)."""

    import torch

    from engine.atomic import atomic_write_bytes
    from engine.train.prompts import class_prompt

    folder = class_image_folder(project, model_key, class_word)
    paths = [folder / f"{i:04d}.png" for i in range(count)]
    prompt = class_prompt(class_word)
    for i, path in enumerate(paths):
        if progress:
            progress(i, count, f"class images of {class_word!r}")
        if _readable_image(path):
            continue
        gen = torch.Generator().manual_seed(derived_seed(seed, "class", class_word, i))
        with torch.no_grad():
            image = pipe(prompt, num_inference_steps=steps, height=resolution, width=resolution,
                         generator=gen).images[0]
        atomic_write_bytes(path, png_bytes(image))
    return paths


# --------------------------------------------------------------------------- batches


@dataclass
class Batch:
    """One micro-batch: latent distributions (already mirrored where drawn), loss weights,
    prompt ids, and the prior-preservation part with its cached text states."""

    latent_mean: torch.Tensor  # [B, C, h, w]
    latent_std: torch.Tensor
    weights: torch.Tensor | None  # [B, 1, h, w], or None for a plain mean
    input_ids: torch.Tensor  # [B, L]
    prior_mean: torch.Tensor | None = None
    prior_std: torch.Tensor | None = None
    prior_states: torch.Tensor | None = None  # [B, L, D]


@dataclass
class PriorData:
    latent_mean: torch.Tensor  # [M, 2, C, h, w]
    latent_std: torch.Tensor
    class_index: torch.Tensor  # [M]: which class prompt each image belongs to
    states: torch.Tensor  # [K, L, D]: text-encoder output of each class prompt, computed once


@dataclass
class TrainingData:
    """Everything cached for the run; `batch(step, micro, generator)` picks a micro-batch."""

    latent_mean: torch.Tensor  # [N, 2, C, h, w]
    latent_std: torch.Tensor
    input_ids: torch.Tensor  # [N, L]
    weights: torch.Tensor | None  # [N, 2, 1, h, w] (masked loss) or None
    batch_size: int
    accumulation: int
    seed: int
    hflip: bool
    prior: PriorData | None = None

    def __post_init__(self) -> None:
        self._order = DataOrder(self.latent_mean.shape[0], self.seed)
        self._prior_order = DataOrder(self.prior.latent_mean.shape[0], self.seed + 1) \
            if self.prior is not None else None

    def _flips(self, size: int, generator: torch.Generator) -> torch.Tensor:
        import torch

        if not self.hflip:
            return torch.zeros(size, dtype=torch.long)
        return torch.randint(0, 2, (size,), generator=generator)

    def batch(self, step: int, micro: int, generator: torch.Generator) -> Batch:
        import torch

        first_slot = (step * self.accumulation + micro) * self.batch_size
        rows = torch.tensor(self._order.indices(first_slot, self.batch_size))
        flips = self._flips(self.batch_size, generator)
        out = Batch(latent_mean=self.latent_mean[rows, flips],
                    latent_std=self.latent_std[rows, flips],
                    weights=None if self.weights is None else self.weights[rows, flips],
                    input_ids=self.input_ids[rows])
        if self.prior is not None and self._prior_order is not None:
            prior_rows = torch.tensor(self._prior_order.indices(first_slot, self.batch_size))
            prior_flips = self._flips(self.batch_size, generator)
            out.prior_mean = self.prior.latent_mean[prior_rows, prior_flips]
            out.prior_std = self.prior.latent_std[prior_rows, prior_flips]
            out.prior_states = self.prior.states[self.prior.class_index[prior_rows]]
        return out
