"""Composition: paste each concept's cut-out into its layout box on a square canvas.

Gen4Gen pastes the segmented objects at the working resolution keeping their aspect ratio,
then repaints everything else. Here each object is fitted inside its box (never outside it),
with light seeded augmentation: a horizontal flip, a small rotation, a smaller scale and a
shift within the room the box leaves. Objects are pasted in z-order with hard edges (alpha
thresholded at 50 %), so inside a concept's mask the composite's pixels *are* the cut-out's;
the soft rim is repainted by the inpainting stage anyway.

Masks are numpy bool arrays (H, W). A concept's mask is what stays visible after objects
with a higher z are pasted over it; the keep mask is their union.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import InputError
from engine.masks import THRESHOLD, mask_box

if TYPE_CHECKING:
    from PIL import Image

    from engine.project import Layout, Mask, Project

ALPHA_CUT = THRESHOLD  # alpha at or above this is object, below is background


@dataclass(frozen=True)
class Augmentation:
    """Light, seeded changes to each pasted object."""

    max_rotation: float = 8.0  # degrees either way
    flip: bool = True  # mirror left-right half of the time
    min_scale: float = 0.85  # of the largest size that fits the box
    shift: bool = True  # a random position in the room the box leaves (else centred)


NO_AUGMENTATION = Augmentation(max_rotation=0.0, flip=False, min_scale=1.0, shift=False)


@dataclass(frozen=True)
class Cutout:
    """One concept's object, cut out of one photo: RGBA cropped to the object."""

    concept_id: int
    photo_id: int
    mask_id: int
    image: Image.Image


@dataclass(frozen=True)
class Placement:
    """Where and how one object went onto the canvas (pixel boxes are x0, y0, x1, y1)."""

    concept_id: int
    photo_id: int
    mask_id: int
    z: int
    flip: bool
    angle: float
    scale: float
    layout_box: tuple[int, int, int, int]
    object_box: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"concept_id": self.concept_id, "photo_id": self.photo_id,
                "mask_id": self.mask_id, "z": self.z, "flip": self.flip,
                "angle": round(self.angle, 4), "scale": round(self.scale, 6),
                "layout_box": list(self.layout_box), "object_box": list(self.object_box)}


@dataclass
class Composition:
    """The composite image, occlusion-aware concept masks, their union and the placements."""

    image: Image.Image  # RGB, size x size
    concept_masks: dict[int, np.ndarray]  # visible part of each concept
    placed_area: dict[int, int]  # pixels of each concept before occlusion
    keep_mask: np.ndarray  # union of the concept masks: the user's pixels
    placements: list[Placement] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.image.size[0]


# --------------------------------------------------------------------------- masks


# --------------------------------------------------------------------------- cut-outs


def concept_cutout_masks(project: Project, concept_id: int) -> list[Mask]:
    """The current mask of each of the concept's photos that has a cut-out, by photo id."""
    current = project.current_masks(concept_id)
    return [current[photo_id] for photo_id in sorted(current) if current[photo_id].cutout_file]


def load_cutout(project: Project, mask: Mask) -> Cutout:
    """The RGBA cut-out of a mask record, trimmed to its visible pixels."""
    from engine.masks import read_cutout

    if not mask.cutout_file:
        raise InputError(f"Mask {mask.id} has no cut-out; segment its photo again")
    image = read_cutout(project.abspath(mask.cutout_file), f"{mask.cutout_file} of mask {mask.id}")
    if image is None:
        raise InputError(f"The cut-out of mask {mask.id} is empty (fully transparent)")
    return Cutout(mask.concept_id, mask.photo_id, mask.id, image)


# --------------------------------------------------------------------------- backgrounds


def noise_background(size: int, seed: int) -> Image.Image:
    """Smooth colour noise: coarse random colours upscaled, plus a little fine grain.

    Inpainting at strength < 1 keeps some of the start image's low frequencies, so this
    gives each item a different overall colour without leaving visible grain.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))
    grain = rng.normal(0.0, 12.0, size=(size, size, 3))
    return Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))


def photo_background(photo: Image.Image, size: int) -> Image.Image:
    """A background photo centre-cropped to a square and resized to the canvas."""
    from PIL import Image, ImageOps

    return ImageOps.fit(photo.convert("RGB"), (size, size), Image.Resampling.LANCZOS)


# --------------------------------------------------------------------------- placement


def box_pixels(obj: Any, size: int) -> tuple[int, int, int, int]:
    """A layout box (x, y, w, h in 0..1) in canvas pixels, at least one pixel each way."""
    x0 = min(size - 1, max(0, round(obj.x * size)))
    y0 = min(size - 1, max(0, round(obj.y * size)))
    x1 = min(size, max(x0 + 1, round((obj.x + obj.w) * size)))
    y1 = min(size, max(y0 + 1, round((obj.y + obj.h) * size)))
    return x0, y0, x1, y1


def _transformed(cutout: Image.Image, flip: bool, angle: float) -> Image.Image:
    from PIL import Image, ImageOps

    image = ImageOps.mirror(cutout) if flip else cutout
    if angle:
        # Premultiplied, so the colour of transparent pixels cannot bleed into the edge.
        image = image.convert("RGBa").rotate(angle, resample=Image.Resampling.BICUBIC,
                                             expand=True).convert("RGBA")
    box = image.getchannel("A").point(lambda a: 255 if a >= ALPHA_CUT else 0).getbbox()
    return image.crop(box) if box else image


def _fit(image: Image.Image, box: tuple[int, int, int, int], scale_jitter: float) -> Image.Image:
    from PIL import Image

    box_w, box_h = box[2] - box[0], box[3] - box[1]
    scale = min(box_w / image.width, box_h / image.height) * scale_jitter
    width = max(1, min(box_w, math.floor(image.width * scale)))
    height = max(1, min(box_h, math.floor(image.height * scale)))
    return image.convert("RGBa").resize((width, height), Image.Resampling.LANCZOS).convert("RGBA")


def compose(
    layout: Layout,
    cutouts: Mapping[int, Cutout],
    size: int,
    seed: int,
    background: Image.Image | None = None,
    augmentation: Augmentation = Augmentation(),
) -> Composition:
    """Paste the cut-out of each layout object into its box, lowest z first.

    `cutouts` maps concept id to the cut-out chosen for it; `background` (RGB, size x size)
    defaults to smooth noise from `seed`.
    """
    from PIL import Image

    if not layout.objects:
        raise InputError(f"Layout {layout.id} has no objects to compose")
    missing = sorted({o.concept_id for o in layout.objects} - set(cutouts))
    if missing:
        raise InputError(f"Layout {layout.id} needs cut-outs of concepts {missing}")
    rng = np.random.default_rng(seed)
    if background is None:
        background = noise_background(size, int(rng.integers(2**31)))
    elif background.size != (size, size):
        background = photo_background(background, size)
    canvas = np.array(background.convert("RGB"), dtype=np.uint8)
    visible: dict[int, np.ndarray] = {}
    placed_area: dict[int, int] = {}
    placements: list[Placement] = []
    # Draw every object's random numbers in layout order, so z-order does not change them.
    draws = []
    for _ in layout.objects:
        flip = augmentation.flip and bool(rng.random() < 0.5)
        angle = float(rng.uniform(-augmentation.max_rotation, augmentation.max_rotation))
        jitter = float(rng.uniform(augmentation.min_scale, 1.0))
        draws.append((flip, angle, jitter, float(rng.random()), float(rng.random())))
    order = sorted(range(len(layout.objects)), key=lambda i: (layout.objects[i].z, i))
    for i in order:
        obj = layout.objects[i]
        flip, angle, jitter, shift_x, shift_y = draws[i]
        cutout = cutouts[obj.concept_id]
        box = box_pixels(obj, size)
        turned = _transformed(cutout.image, flip, angle)
        layer = _fit(turned, box, jitter)
        room_x, room_y = box[2] - box[0] - layer.width, box[3] - box[1] - layer.height
        if augmentation.shift:
            x0, y0 = box[0] + round(shift_x * room_x), box[1] + round(shift_y * room_y)
        else:
            x0, y0 = box[0] + room_x // 2, box[1] + room_y // 2
        pixels = np.asarray(layer)
        solid = pixels[..., 3] >= ALPHA_CUT
        full = np.zeros((size, size), dtype=bool)
        full[y0:y0 + layer.height, x0:x0 + layer.width] = solid
        region = canvas[y0:y0 + layer.height, x0:x0 + layer.width]
        region[solid] = pixels[..., :3][solid]
        for other in visible.values():
            other &= ~full
        visible[obj.concept_id] = visible.get(obj.concept_id, np.zeros_like(full)) | full
        placed_area[obj.concept_id] = placed_area.get(obj.concept_id, 0) + int(full.sum())
        placements.append(Placement(
            concept_id=obj.concept_id, photo_id=cutout.photo_id, mask_id=cutout.mask_id,
            z=obj.z, flip=flip, angle=angle, scale=layer.width / turned.width,
            layout_box=box, object_box=mask_box(full) or (x0, y0, x0, y0),
        ))
    keep = np.zeros((size, size), dtype=bool)
    for mask in visible.values():
        keep |= mask
    return Composition(image=Image.fromarray(canvas), concept_masks=visible,
                       placed_area=placed_area, keep_mask=keep, placements=placements)
