"""Projects with generated pictures for the score, gallery and report tests, made through the
Project API only (the generate stage's contract: a `generations` row per picture, its recipe
in `settings`).

A picture is a noise background with concept cut-outs pasted into boxes, so a detector box
exists where a concept is; a layout-guided one records its layout in the recipe.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from dataset_project import make_dataset_project
from PIL import Image

from engine.project import Generation, Project, Run

SIDE = 64


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def cutout_of(project: Project, concept_id: int) -> Image.Image:
    """The concept's first current cut-out (RGBA)."""
    masks = project.current_masks(concept_id)
    mask = next(m for _pid, m in sorted(masks.items()) if m.cutout_file)
    with Image.open(project.abspath(mask.cutout_file)) as im:
        return im.convert("RGBA")


def picture(project: Project, placed: Sequence[tuple[int, tuple[float, float, float, float]]],
            seed: int, side: int = SIDE) -> Image.Image:
    """Noise with each (concept id, box x, y, w, h in 0..1) cut-out pasted in its box."""
    rng = np.random.default_rng(seed)
    canvas = Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8))
    for concept_id, (x, y, w, h) in placed:
        cut = cutout_of(project, concept_id)
        size = (max(1, round(w * side)), max(1, round(h * side)))
        cut = cut.resize(size)
        canvas.paste(cut, (round(x * side), round(y * side)), cut)
    return canvas


def add_picture(project: Project, prompt: str, image: Image.Image, *, seed: int = 0,
                run_id: int | None = None, layout: dict | None = None,
                profile: str = "tiny") -> Generation:
    """A generations row as the generate stage writes it (recipe in settings)."""
    rel = project.put_bytes(png(image), "png")
    settings = {"format": "mycanvas-recipe", "version": 1, "prompt": prompt, "seed": seed,
                "profile": profile, "layout": layout, "steps": 2}
    return project.add_generation(Generation(prompt=prompt, seed=seed, settings=settings,
                                             image_file=rel, run_id=run_id))


def add_run_with_loss(project: Project, steps: int = 30) -> Run:
    """A finished training run with a metrics.jsonl of decreasing loss."""
    run = project.add_run(Run(kind="custom-diffusion", status="running", config={"steps": steps}))
    assert run.id is not None
    folder = project.root / "runs" / str(run.id)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"step": s, "loss": 1.0 / s, "lr": 1e-5}) for s in range(1, steps + 1)]
    lines.insert(5, json.dumps({"step": 5, "sample": "samples/step-5.png", "prompt": "x"}))
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n{torn", encoding="utf-8")
    return project.update_run(run.id, status="finished", output_dir=f"runs/{run.id}",
                              metrics_file=f"runs/{run.id}/metrics.jsonl")


def make_scoring_project(folder: Path) -> Path:
    """The dataset test project (<mochi> cat, <cup> mug, <rocket> rocket, with cut-outs and
    layouts) plus a run and four pictures: two guided, one unguided, one naming no concept."""
    make_dataset_project(folder)
    with Project.open(folder) as project:
        ids = {c.token: c.id for c in project.concepts()}
        run = add_run_with_loss(project)
        boxes = {"<mochi>": (0.05, 0.3, 0.45, 0.45), "<cup>": (0.55, 0.4, 0.35, 0.4)}
        layout = {"boxes": [{"token": t, "x": b[0], "y": b[1], "w": b[2], "h": b[3]}
                            for t, b in boxes.items()], "strength": 1.0,
                  "guided_fraction": 0.3, "layout_id": None}
        both = [(ids[t], b) for t, b in boxes.items()]
        add_picture(project, "a photo of <mochi> cat and <cup> mug on a table",
                    picture(project, both, 1), seed=1, run_id=run.id, layout=layout)
        add_picture(project, "<composition> a photo of <mochi> cat, <mochi> cat. background: "
                    "a garden", picture(project, both[:1], 2), seed=2, run_id=run.id,
                    layout={**layout, "boxes": layout["boxes"][:1]})
        add_picture(project, "a photo of <cup> mug and <rocket> rocket",
                    picture(project, [(ids["<cup>"], (0.1, 0.1, 0.4, 0.5)),
                                      (ids["<rocket>"], (0.6, 0.1, 0.3, 0.8))], 3),
                    seed=3, run_id=run.id)
        add_picture(project, "an empty sunlit kitchen", picture(project, [], 4), seed=4,
                    run_id=run.id)
    return folder
