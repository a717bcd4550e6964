"""Generation: new pictures of the user's concepts from a run (training or EM extraction),
each stored with the recipe that makes it again; optionally placed by a layout.

    concepts.py         a run's exported concepts (one reader for every run kind)
    loading.py          put a run's concepts into a pipeline and take them out exactly
    token_rows.py       the text encoder's embedding with the learned token rows beside it
    prompts.py          prompts in the training's language; where each concept sits in one
    recipe.py           Recipe: everything that makes a picture again; PNG text chunks
    layout_guidance.py  DenseDiffusion-style cross-attention guidance towards boxes
    precision.py        the precision a generation runs in, from the device plan
    preview.py          previews from latents without the VAE
    sampler.py          GenerationModel: the warm pipeline, its run, one picture per recipe
    generate_job.py     the `generate` job: check, load, make, store
    measure.py          what layout guidance does: attention inside the boxes, scores
    jobs.py             the `generate` job, declared once

Public API (for the window, the score stage and scripts):

* the job: `GENERATE`, `GenerateParams`, `GeneratedImages` (its `generation_ids` are the
  catalogue rows the score job takes);
* runs: `RunConcepts`, `ConceptInfo`, `load_run_concepts(project, run_id)`,
  `read_run_export(folder)`, `newest_finished_run(project)`;
* a pipeline: `apply_concepts(pipe, run) -> LoadedConcepts`, `unload_concepts(pipe, loaded)`;
* recipes: `Recipe`, `LayoutBox`, `LayoutSpec`, `read_recipe_file(path)`,
  `recipe_from_png(path)`.

Importing this package is cheap: torch, diffusers and PIL are imported by the functions that
need them.
"""

from engine.generate.concepts import (
    ConceptInfo,
    RunConcepts,
    load_run_concepts,
    newest_finished_run,
    read_run_export,
)
from engine.generate.jobs import GENERATE, GeneratedImages, GenerateParams
from engine.generate.loading import LoadedConcepts, apply_concepts, unload_concepts
from engine.generate.recipe import (
    LayoutBox,
    LayoutSpec,
    Recipe,
    read_recipe_file,
    recipe_from_png,
)

__all__ = [
    "GENERATE",
    "ConceptInfo",
    "GenerateParams",
    "GeneratedImages",
    "LayoutBox",
    "LayoutSpec",
    "LoadedConcepts",
    "Recipe",
    "RunConcepts",
    "apply_concepts",
    "load_run_concepts",
    "newest_finished_run",
    "read_recipe_file",
    "read_run_export",
    "recipe_from_png",
    "unload_concepts",
]
