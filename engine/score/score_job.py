"""The `score` job: each live picture without scores (with `rescore`, each picture again), in
batches. A picture's scores are written in one transaction as soon as its batch is done, so
a cancel or a kill keeps everything scored so far and running the job again scores the rest;
a resumed rescore skips what it already rescored (the journal keeps its start time).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from engine.errors import InputError, ProjectError
from engine.project import Concept, Generation, Project, prompt_concepts
from engine.score.definitions import TEST_MODEL_NOTE

if TYPE_CHECKING:
    from PIL import Image

    from engine.jobs import JobContext
    from engine.score.jobs import ScoredPictures, ScoreParams
    from engine.score.scorer import Picture, PictureResult, Scorer


def load_picture(project: Project, generation: Generation, concepts: list[Concept]) -> Picture:
    """What a generation is scored from: its image (RGB), prompt and the concepts it names."""
    from engine.image_files import open_picture
    from engine.score.metrics import ConceptWord
    from engine.score.scorer import Picture

    if not generation.image_file:
        raise InputError(f"picture {generation.id} has no image file")
    try:
        image = open_picture(project.abspath(generation.image_file))
    except InputError as exc:  # a hostile or damaged file: this picture is skipped, named
        raise InputError(f"picture {generation.id}: {exc}") from exc
    named = prompt_concepts(generation.prompt, concepts)
    return Picture(int(generation.id or 0), image, generation.prompt,
                   tuple(ConceptWord(c.id, c.token, c.class_word) for c in named))


def _score_leanly(ctx: JobContext, scorer: Scorer, pictures: list[Picture]
                  ) -> list[PictureResult]:
    """The batch; after an out-of-memory, once more one picture at a time with every other
    warm model evicted (a second out-of-memory fails the job with the readable reason)."""
    from engine.device import free_device_memory, is_out_of_memory
    from engine.score.models import SCORING_ROLES

    try:
        return scorer.score(pictures)
    except Exception as exc:
        if not is_out_of_memory(exc) or len(pictures) < 2:
            raise
    gone = ctx.models.evict_where(lambda key: key.role not in SCORING_ROLES)
    free_device_memory()
    ctx.log(f"Out of memory with {len(pictures)} pictures at once: scoring them one at a "
            f"time{' (other models set aside)' if gone else ''}", "warning")
    return [result for picture in pictures for result in scorer.score([picture])]


def score_job(ctx: JobContext, params: ScoreParams) -> ScoredPictures:
    """Job: score the pictures that need it (see the module doc)."""
    from engine.jobs.stage_setup import resolve_stage
    from engine.project.gallery import score_time
    from engine.score.jobs import ScoredPictures
    from engine.score.models import load_scoring_models
    from engine.score.scorer import ReferenceBank, Scorer

    setup = resolve_stage(params)
    with Project.open(params.project) as proj:
        before = params.rescore_before
        if params.rescore and before is None:
            before = score_time()
            proj.journal_note_resume(ctx.job_id, rescore_before=before)
        todo = proj.generations_to_score(params.run_id, params.generation_ids,
                                         before if params.rescore else None)
        if not todo:
            ctx.log("Every picture asked for already has scores")
            return ScoredPictures(scored=0, remaining=0)
        total = len(todo)
        ctx.progress(0, total, "loading the scoring models")
        models = load_scoring_models(ctx, setup)
        if models.test_model:
            ctx.log(f"Test models: {TEST_MODEL_NOTE}", "warning")
        cache = ctx.cache.setdefault(("score-references", models.label, setup.device_name), {})
        scorer = Scorer(models.embedder, models.detector,
                        ReferenceBank(proj, models.embedder, cache), params.threshold)
        concepts = proj.concepts()
        scored: list[int] = []
        failures: list[str] = []
        cps: list[float] = []
        tis: list[float] = []
        for start in range(0, total, params.batch_size):
            batch = todo[start:start + params.batch_size]
            ctx.progress(start, total, f"pictures {start + 1}-{start + len(batch)} of {total}")
            pictures = []
            for generation in batch:
                try:
                    pictures.append(load_picture(proj, generation, concepts))
                except InputError as exc:
                    failures.append(str(exc))
                    ctx.log(f"skipped: {exc}", "warning")
            for result in _score_leanly(ctx, scorer, pictures):
                rows = result.rows(models.label, models.test_model, params.threshold)
                try:
                    proj.replace_scores(result.generation_id, rows)
                except (InputError, ProjectError) as exc:  # deleted meanwhile, disk full
                    failures.append(f"picture {result.generation_id}: {exc}")
                    continue
                scored.append(result.generation_id)
                tis.append(result.ti_clip)
                if result.cp_clip is not None:
                    cps.append(result.cp_clip)
                cp = "-" if result.cp_clip is None else f"{result.cp_clip:.3f}"
                ctx.log(f"picture {result.generation_id}: CP-CLIP {cp}, "
                        f"TI-CLIP {result.ti_clip:.3f}")
        ctx.progress(total, total, "done")
    return ScoredPictures(
        scored=len(scored), remaining=total - len(scored), generation_ids=scored,
        failures=failures, mean_cp_clip=sum(cps) / len(cps) if cps else None,
        mean_ti_clip=sum(tis) / len(tis) if tis else None, model=models.label,
        test_model=models.test_model)


class PictureScorer:
    """The metrics for pictures outside the catalogue (a comparison harness, a preview): a
    PIL image and its prompt in, a PictureResult out, with the project's concepts and
    references and warm models. Made by `picture_scorer`."""

    def __init__(self, scorer: Scorer, concepts: list[Concept], model: str,
                 test_model: bool) -> None:
        self._scorer = scorer
        self._concepts = concepts
        self.model = model
        self.test_model = test_model

    def score(self, image: Image.Image, prompt: str) -> PictureResult:
        from engine.score.metrics import ConceptWord
        from engine.score.scorer import Picture

        named = prompt_concepts(prompt, self._concepts)
        words = tuple(ConceptWord(c.id, c.token, c.class_word) for c in named)
        return self._scorer.score([Picture(0, image.convert("RGB"), prompt, words)])[0]

    def concept_cp_clip(self, image: Image.Image, prompt: str) -> dict[str, float]:
        """CP-CLIP of each concept the prompt names, by token."""
        tokens = {c.id: c.token for c in self._concepts}
        return {tokens[c.concept_id]: c.cp_clip for c in self.score(image, prompt).concepts}


@contextlib.contextmanager
def picture_scorer(ctx: JobContext, params: ScoreParams) -> Iterator[PictureScorer]:
    """A PictureScorer for the project and models `params` name (its run, ids and rescore
    fields are not used), open while the `with` block runs."""
    from engine.jobs.stage_setup import resolve_stage
    from engine.score.models import load_scoring_models
    from engine.score.scorer import ReferenceBank, Scorer

    setup = resolve_stage(params)
    with Project.open(params.project) as proj:
        models = load_scoring_models(ctx, setup)
        cache = ctx.cache.setdefault(("score-references", models.label, setup.device_name), {})
        scorer = Scorer(models.embedder, models.detector,
                        ReferenceBank(proj, models.embedder, cache), params.threshold)
        yield PictureScorer(scorer, proj.concepts(), models.label, models.test_model)
