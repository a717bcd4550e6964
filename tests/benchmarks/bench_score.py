"""Scoring speed on the CPU: seconds per picture with full-size OWL-ViT B/32 + CLIP ViT-B/32
architectures (random weights, built from their published sizes), one picture at a time
against batches of eight.

The score job runs end to end (read the picture, detect, crop, embed, assign, store its rows),
with the models and the concepts' reference embeddings already warm (a first job on one
picture loads them, as a worker that scored before has them). Pictures are 512 px (SD 1.5's
size), each showing two concepts (scikit-image cut-outs pasted on noise), and the timed runs
rescore all of them. One thread (OMP_NUM_THREADS=1), as everywhere here. Run it under
`flock /tmp/mycanvas-heavy.lock`: the models take about 1.2 GB.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from run import REPO, benchmark

sys.path.insert(0, str(REPO / "tests"))

PICTURES = 8
SIDE = 512


def _project(root: Path) -> tuple[Path, list[int]]:
    from dataset_project import make_dataset_project
    from scoring_project import add_picture, picture

    from engine.project import Project

    folder = make_dataset_project(root / "project", photo_side=256)
    with Project.open(folder) as proj:
        ids = {c.token: c.id for c in proj.concepts()}
        made = []
        for n in range(PICTURES + 1):
            placed = [(ids["<mochi>"], (0.05, 0.25, 0.45, 0.5)),
                      (ids["<cup>"], (0.55, 0.35, 0.35, 0.45))]
            image = picture(proj, placed, seed=n, side=SIDE)
            made.append(add_picture(proj, "a photo of <mochi> cat and <cup> mug on a table",
                                    image, seed=n, profile="sd15").id)
    return folder, made


@contextlib.contextmanager
def _stopwatch() -> Iterator[dict[str, float]]:
    """Seconds spent in the detector and in CLIP while the block runs."""
    from engine.score.detection import OwlDetector
    from engine.score.embedding import ClipEmbedder

    spent = {"detect": 0.0, "clip": 0.0}
    originals = {(OwlDetector, "detect"): "detect", (ClipEmbedder, "images"): "clip",
                 (ClipEmbedder, "texts"): "clip"}
    saved = {key: getattr(*key) for key in originals}

    def timed(fn, bucket):
        def wrapper(*args, **kwargs):
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[bucket] += time.perf_counter() - began
        return wrapper

    for (cls, name), bucket in originals.items():
        setattr(cls, name, timed(saved[(cls, name)], bucket))
    try:
        yield spent
    finally:
        for (cls, name), fn in saved.items():
            setattr(cls, name, fn)


def _timed_job(params, ctx_models, cache) -> float:
    from engine.jobs import JobContext, JobFinished, JobSpec, run_job
    from engine.score import SCORE

    spec = JobSpec.of(SCORE, params)
    ctx = JobContext(spec.job_id, lambda _e: None, models=ctx_models, cache=cache)
    began = time.perf_counter()
    end = run_job(spec, ctx)
    seconds = time.perf_counter() - began
    assert isinstance(end, JobFinished), end
    return seconds


@benchmark("score")
def score_speed() -> list[dict]:
    from scoring_fullsize import build_fullsize_scoring_models

    from engine.jobs.warm_cache import WarmCache
    from engine.paths import data_dir
    from engine.score import ScoreParams

    models = build_fullsize_scoring_models(data_dir() / "bench-score-models")
    root = Path(tempfile.mkdtemp(prefix="bench-score-"))
    try:
        folder, ids = _project(root)
        warm, cache = WarmCache(), {}

        def params(**kw):
            return ScoreParams(project=str(folder), profile="sd15", device="cpu",
                               overrides={k: str(v) for k, v in models.items()}, **kw)

        load = _timed_job(params(generation_ids=ids[:1]), warm, cache)
        timed = ids[1:]
        one = min(_timed_job(params(generation_ids=timed, rescore=True, batch_size=1), warm,
                             cache) for _ in range(2))
        with _stopwatch() as parts:
            batched = min(_timed_job(params(generation_ids=timed, rescore=True,
                                            batch_size=PICTURES), warm, cache)
                          for _ in range(2))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    runs = 2 * len(timed)
    threads = os.environ.get("OMP_NUM_THREADS", "?")
    note = f"{PICTURES} pictures of {SIDE} px, 2 concepts each, {threads} thread(s); best of 2"
    return [
        {"metric": "first job: load OWL-ViT B/32 + CLIP ViT-B/32, embed references, score 1",
         "value": load, "unit": "s", "note": "random weights, fp32"},
        {"metric": "score one by one (batch 1), per picture", "value": one / len(timed),
         "unit": "s", "note": note},
        {"metric": "score batched (batch 8), per picture", "value": batched / len(timed),
         "unit": "s", "note": note},
        {"metric": "batched speed-up", "value": one / batched, "unit": "×",
         "note": "one by one ÷ batched"},
        {"metric": "of which OWL-ViT detection, per picture (batched)",
         "value": parts["detect"] / runs, "unit": "s", "note": "768 px input"},
        {"metric": "of which CLIP (picture + crops, prompt), per picture (batched)",
         "value": parts["clip"] / runs, "unit": "s", "note": "224 px input"},
        {"metric": "peak RSS of the benchmark", "unit": "MB",
         "value": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
    ]
