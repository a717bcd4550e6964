"""A small training project made through the Project API only (no dataset builder).

Three concepts (<mochi> cat, <cup> mug, <rocket> rocket) and four 64 px items: scikit-image's
sample photos pasted side by side on a noise background, one rectangular mask per object, a
token caption per item. Three items link a layout (its scene names the background); one does
not, so its scene must be read off the caption. A fifth, rejected item must never train.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from engine.project import DatasetItem, Layout, LayoutObject, Project

SIDE = 64
# (concept indices, scene, linked to a layout?)
ITEMS = (
    ((0, 1), "on a wooden table in a sunlit kitchen", True),
    ((1, 2), "a garden", True),
    ((0, 2), "a cosy living room", False),
    ((0, 1, 2), "a beach", True),
)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def make_train_project(folder: Path, side: int = SIDE) -> Path:
    from skimage import data

    photos = {"cat": data.chelsea(), "mug": data.coffee(), "rocket": data.rocket()}
    rng = np.random.default_rng(0)
    with Project.create(folder, "Training test") as project:
        concepts = [project.add_concept("Mochi", "cat", token="<mochi>"),
                    project.add_concept("Cup", "mug", token="<cup>"),
                    project.add_concept("Rocket", "rocket", token="<rocket>")]
        for n, (which, scene, linked) in enumerate(ITEMS):
            canvas = Image.fromarray((rng.random((side, side, 3)) * 60 + 100).astype(np.uint8))
            width = side // len(which)
            masks, objects = {}, []
            for k, index in enumerate(which):
                concept = concepts[index]
                x, y = k * width, side // 4
                canvas.paste(Image.fromarray(photos[concept.class_word]).resize(
                    (width, side // 2)), (x, y))
                mask = np.zeros((side, side), np.uint8)
                mask[y:y + side // 2, x:x + width] = 255
                masks[concept.id] = project.put_bytes(_png(Image.fromarray(mask, "L")), "png")
                objects.append(LayoutObject(concept.id, x / side, y / side, width / side, 0.5, k))
            layout_id = project.add_layout(Layout(scene=scene, objects=tuple(objects),
                                                  source="test")).id if linked else None
            names = " and ".join(f"{concepts[i].token} {concepts[i].class_word}" for i in which)
            where = scene if scene.startswith("on ") else f"in {scene}"
            project.add_dataset_item(DatasetItem(
                image_file=project.put_bytes(_png(canvas), "png"), caption=f"item {n}",
                token_caption=f"a photo of {names} {where}", layout_id=layout_id, masks=masks,
                review_state="accepted" if n % 2 else "auto-kept"))
        project.add_dataset_item(DatasetItem(
            image_file=project.put_bytes(_png(Image.new("RGB", (side, side))), "png"),
            caption="black", token_caption="a photo of <mochi> cat", review_state="rejected"))
    return Path(folder)
