"""The generation stage's job, declared once: pictures from a run's concepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import InputError
from engine.jobs.declaration import JobDeclaration, JobResult, StageParams, param

MAX_IMAGES = 1000
SCHEDULER_CHOICES = ("default", "pndm", "ddim", "euler", "euler-a", "dpm++", "unipc")


@dataclass(frozen=True, kw_only=True)
class GenerateParams(StageParams):
    run_id: int | None = param(None, flag="--run", metavar="RUN", minimum=1,
                               help="the run whose concepts to use (default: the newest "
                                    "finished training or extraction run)")
    prompt: str | None = param(None, help="the prompt, with concept tokens: "
                                          "'<mochi> cat and <cup> mug on a beach'")
    concepts: list[str] | None = param(None, metavar="CONCEPT",
                                       help="concepts to show (names or tokens); the prompt is "
                                            "then written the way the run trained")
    scene: str = param("", help="where they are, with --concepts or --layout: 'on a beach'")
    negative: str = param("", help="negative prompt: what the picture should not show")
    count: int = param(1, minimum=1, maximum=MAX_IMAGES, help="how many pictures")
    seed: int | None = param(None, minimum=0, maximum=2**63 - 1,
                             help="seed of the first picture; picture k uses seed + k "
                                  "(default: a random one, recorded)")
    seeds: list[int] | None = param(None, cli=False,
                                    help="exact seeds, one picture each (instead of seed and "
                                         "count)")
    steps: int | None = param(None, minimum=1, maximum=500,
                              help="denoising steps (default 30, 20 on a CPU)")
    guidance: float = param(7.5, minimum=0.0, maximum=30.0, help="guidance scale")
    width: int | None = param(None, minimum=64, maximum=4096,
                              help="width in pixels (default: the profile's resolution)")
    height: int | None = param(None, minimum=64, maximum=4096,
                               help="height in pixels (default: the profile's resolution)")
    scheduler: str = param("default", choices=SCHEDULER_CHOICES,
                           help="the sampler (default: the model's own)")
    layout_id: int | None = param(None, flag="--layout", metavar="ID", minimum=1,
                                  help="a layout of the project: each concept is steered into "
                                       "its box; without a prompt, the layout's caption")
    boxes: dict[str, list[float]] | None = param(
        None, cli=False, help="a box per concept: name or token -> [x0, y0, x1, y1] in 0..1 of "
                              "the canvas")
    layout_strength: float = param(1.0, minimum=0.0, maximum=10.0,
                                   help="how strongly boxes steer each concept's attention")
    guided_fraction: float = param(0.3, minimum=0.0, maximum=1.0,
                                   help="the share of denoising steps the boxes guide")
    preview_every: int = param(5, minimum=0, maximum=1000,
                               help="a preview every this many steps (0: none)")
    recipe: dict[str, Any] | None = param(None, cli=False,
                                          help="make this recipe again (a generation's "
                                               "settings, or a PNG's recipe)")
    batch: str | None = param(None, cli=False,
                              help="resuming: the batch whose missing pictures to make")

    def check(self) -> None:
        super().check()
        if self.recipe is not None:
            given = [name for name, value in (
                ("prompt", self.prompt), ("concepts", self.concepts), ("seed", self.seed),
                ("seeds", self.seeds), ("layout", self.layout_id), ("boxes", self.boxes),
                ("run", self.run_id)) if value is not None]
            if given or self.count != 1:
                raise InputError("A recipe makes exactly its own picture: leave out "
                                 f"{', '.join(given) or 'the count'}")
        if self.prompt is not None and self.concepts is not None:
            raise InputError("Give either a prompt or concepts with a scene, not both")
        if self.prompt is not None and self.scene:
            raise InputError("A scene goes with concepts or a layout; a prompt names its own")
        if self.layout_id is not None and self.boxes is not None:
            raise InputError("Give either a layout or boxes, not both")
        if self.seeds is not None:
            if self.seed is not None or self.count != 1:
                raise InputError("Give either seeds, or a seed and a count")
            if not 1 <= len(self.seeds) <= MAX_IMAGES or \
                    any(not 0 <= s <= 2**63 - 1 for s in self.seeds):
                raise InputError(f"seeds must be 1 to {MAX_IMAGES} whole numbers from 0")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value % 8:
                raise InputError(f"{name} must be a multiple of 8, got {value}")
        from engine.generate.recipe import LayoutBox, check_text_size

        for name in ("prompt", "negative", "scene"):
            value = getattr(self, name)
            if isinstance(value, str):
                check_text_size(value, name, "generate")
        for name, corners in (self.boxes or {}).items():
            LayoutBox.from_corners(name, corners)


@dataclass(frozen=True)
class GeneratedImages(JobResult):
    """What the job made. `generation_ids` is the hook for scoring: the catalogue rows of the
    pictures made now, in order (the score job takes them)."""

    run_id: int
    generation_ids: list[int]
    image_files: list[str]  # project-relative PNGs, in order
    seeds: list[int]
    prompt: str
    batch: str  # the batch id every picture of this job records
    already: int = 0  # pictures of a resumed batch made before

    def summary(self) -> str:
        if not self.generation_ids:
            return f"Nothing to make: the {self.already} picture(s) of this batch exist"
        ids = self.generation_ids
        span = f"#{ids[0]}" if len(ids) == 1 else f"#{ids[0]}-#{ids[-1]}"
        before = f" ({self.already} made before)" if self.already else ""
        return (f"{len(ids)} picture(s) from run {self.run_id}{before}, generation {span}: "
                f"{self.prompt!r}, seed(s) {', '.join(map(str, self.seeds))}")


GENERATE = JobDeclaration(
    "generate", "engine.generate.generate_job:generate_job", GenerateParams, GeneratedImages,
    title=lambda p: f"Generate {p.count if p.seeds is None else len(p.seeds)} picture(s)",
    resumable=True, changes=("generations",), continues_on=("batch",),
    help="pictures of your concepts from a run, optionally placed by a layout")
JOBS = (GENERATE,)
