"""Export chosen pictures with their recipes: for each, a PNG whose text chunk holds the
recipe, and the same recipe as a JSON file beside it.

    OUT/000012-a-photo-of-mochi-cat.png    text chunk "mycanvas_recipe": the recipe as JSON
    OUT/000012-a-photo-of-mochi-cat.json   the same recipe

The recipe is the generation's settings as the generate stage recorded them (prompt, seed,
concept run, layout, ...: engine/generate/recipe.py), under the same chunk name the generate
stage writes, so `mycanvas generate --recipe` reads an exported PNG like a fresh one. The
gallery adds what it knows under "gallery": the picture's id, project, favourite, rating,
whether it was layout-guided, and its scores (with `test_model` true when the tiny test
models made them). Other text chunks of the original (e.g. "parameters") are kept. Files
are written atomically; exporting the same picture again rewrites its files.
Mixed into Project.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.atomic import atomic_write_bytes, atomic_write_text
from engine.errors import InputError, ProjectError
from engine.image_files import RECIPE_KEY, recipe_chunk
from engine.paths import safe_component
from engine.project.gallery import GalleryImage, generation_ids


@dataclass(frozen=True)
class ExportedPicture:
    generation_id: int
    png: Path
    recipe: Path


def recipe_of(image: GalleryImage, project_name: str) -> dict[str, Any]:
    """The recipe of one picture, as plain JSON values: its settings, plus "gallery"."""
    from engine import __version__

    data = image.to_dict()
    recipe: dict[str, Any] = dict(image.generation.settings)
    # Rows written without a full recipe still say what was asked.
    for key in ("prompt", "seed", "run_id"):
        recipe.setdefault(key, data[key])
    recipe["gallery"] = {
        "generation_id": data["id"], "project": project_name, "created_at": data["created_at"],
        "favourite": data["favourite"], "rating": data["rating"], "guided": data["guided"],
        "scores": data["scores"], "test_model": data["scores"]["test_model"],
        "exported_by": f"MyCanvas Studio {__version__}",
    }
    return recipe


def read_recipe(png: str | Path) -> dict[str, Any]:
    """The recipe stored in an exported PNG (InputError if it holds none)."""
    recipe = recipe_chunk(png)
    if recipe is None:
        raise InputError(f"{png} holds no MyCanvas recipe")
    return recipe


def _png_with_recipe(path: Path, recipe: dict[str, Any]) -> bytes:
    from PIL import Image, PngImagePlugin, UnidentifiedImageError

    from engine.image_files import check_png_chunks

    check_png_chunks(path)  # a hostile chunk or size is refused before Pillow decodes it
    try:
        with Image.open(path) as im:
            im.load()
            kept = {k: v for k, v in (getattr(im, "text", None) or {}).items()
                    if isinstance(v, str) and k != RECIPE_KEY}
            picture = im if im.mode in ("RGB", "RGBA", "L", "LA") else im.convert("RGBA")
            info = PngImagePlugin.PngInfo()
            for key, value in kept.items():
                info.add_itxt(key, value)
            info.add_itxt(RECIPE_KEY, json.dumps(recipe, ensure_ascii=False, sort_keys=True))
            buf = io.BytesIO()
            picture.save(buf, format="PNG", pnginfo=info)
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError,
            Image.DecompressionBombError) as exc:
        raise InputError(f"The image {path} cannot be read ({exc})") from exc
    return buf.getvalue()


class GalleryExport:
    """export_generations. Needs Project's plumbing and GalleryRecords."""

    if TYPE_CHECKING:

        @property
        def name(self) -> str: ...

        def gallery_image(self, generation_id: int) -> GalleryImage: ...

    def export_generations(self, ids: int | Iterable[int],
                           out_dir: str | Path) -> list[ExportedPicture]:
        """Write each chosen picture as a PNG carrying its recipe, plus the recipe as JSON,
        into `out_dir` (made if needed). Every picture is checked before anything is written:
        one without an image file is an InputError and nothing is exported."""
        wanted = generation_ids(ids)
        if not wanted:
            raise InputError("Choose at least one picture to export")
        images = [self.gallery_image(gid) for gid in wanted]
        for image in images:
            if image.path is None or not image.path.is_file():
                where = f" ({image.generation.image_file})" if image.generation.image_file else ""
                raise InputError(f"Picture {image.id} has no image file{where}; "
                                 "nothing was exported")
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise InputError(f"{out} is a file; choose a folder to export into")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"Could not create {out}: {exc.strerror or exc}") from exc
        done = []
        for image in images:
            assert image.path is not None
            stem = f"{image.id:06d}-" + safe_component(image.generation.prompt, fallback="picture",
                                                      max_len=48)
            recipe = recipe_of(image, self.name)
            data = _png_with_recipe(image.path, recipe)
            png, recipe_file = out / f"{stem}.png", out / f"{stem}.json"
            try:
                atomic_write_bytes(png, data)
                atomic_write_text(recipe_file, json.dumps(recipe, indent=2, ensure_ascii=False,
                                                          sort_keys=True) + "\n")
            except OSError as exc:
                raise ProjectError(f"Could not write {png}: {exc.strerror or exc}") from exc
            done.append(ExportedPicture(image.id, png, recipe_file))
        return done
