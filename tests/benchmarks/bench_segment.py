"""Segmentation benchmarks: mask quality of the offline fallback against the hand-made
reference masks, time per photo (fallback, tiny SAM, full-size SAM ViT-B with random weights on
CPU), and the latency of a refinement click once the photo's embedding is cached.

The ViT-B weights are random, so its masks mean nothing; it measures the real architecture's
cost. Quality figures come from the fallback only (no real SAM weights on this machine).
"""

from __future__ import annotations

import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from run import REPO, benchmark

sys.path.insert(0, str(REPO / "tests"))
from reference_photos import PHOTOS, reference_mask, reference_photo

# What a user would draw around each object (photo pixels), for the "one box" rows.
USER_BOXES = {"cat": (0, 0, 400, 300), "coffee": (70, 10, 485, 395),
              "rocket": (300, 120, 345, 410), "astronaut": (15, 10, 510, 512)}
CLICK = {"cat": (200, 150), "coffee": (300, 200), "rocket": (321, 260)}


def _photos() -> dict[str, object]:
    return {name: reference_photo(name) for name in PHOTOS}


def _timed(fn, repeats: int = 1) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


@benchmark("segment-fallback")
def fallback_quality() -> list[dict]:
    from engine.masks import mask_iou
    from engine.segment.grabcut import GrabCutSegmenter
    from engine.segment.sam import Prompt, segment_image

    segmenter = GrabCutSegmenter()
    photos = _photos()
    rows, auto_times, auto_ious = [], [], {}
    segment_image(segmenter, photos["coffee"], "warm-up")  # OpenCV's first call loads code
    for name, image in photos.items():
        seconds, auto = _timed(lambda im=image, n=name: segment_image(segmenter, im, n), 3)
        auto_times.append(seconds)
        _, boxed = _timed(lambda im=image, n=name: segment_image(
            segmenter, im, n, Prompt(box=USER_BOXES[n])))
        ref = reference_mask(name)
        auto_ious[name] = mask_iou(auto.mask, ref)
        w, h = image.size
        rows += [
            {"metric": f"fallback IoU, automatic ({name} {w}×{h})",
             "value": mask_iou(auto.mask, ref), "unit": "IoU",
             "note": f"mask {auto.mask.mean() * 100:.0f}% of photo, "
                     f"reference {ref.mean() * 100:.0f}%"},
            {"metric": f"fallback IoU, one user box ({name})",
             "value": mask_iou(boxed.mask, ref), "unit": "IoU",
             "note": "box " + ",".join(str(v) for v in USER_BOXES[name])},
        ]
    worst = min(auto_ious, key=auto_ious.__getitem__)
    rows += [{"metric": f"fallback IoU, automatic: mean of {len(auto_ious)} photos",
              "value": statistics.mean(auto_ious.values()), "unit": "IoU",
              "note": "the bar: tests/test_segment_reference.py"},
             {"metric": "fallback IoU, automatic: worst photo", "value": auto_ious[worst],
              "unit": "IoU", "note": worst}]
    rows.append({"metric": f"fallback time per photo, automatic (median of {len(photos)} "
                           "photos × 3)",
                 "value": statistics.median(auto_times), "unit": "s",
                 "note": "GrabCut at 320 px: 4 starts × 2 iterations, 3 more on the best; "
                         "1 thread"})
    return rows


@benchmark("segment-intake")
def intake() -> list[dict]:
    from PIL import Image

    from engine.intake.photos import decode_image

    rng = np.random.default_rng(0)
    big = Image.fromarray((rng.random((3000, 4000, 3)) * 255).astype(np.uint8))
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    seconds, _ = _timed(lambda: decode_image(data, "12mp.jpg"), 3)
    return [{"metric": "check + decode + normalise a 12-MP JPEG (median of 3)",
             "value": seconds, "unit": "s", "note": f"{len(data) / 2**20:.1f} MB of noise"}]


def _sam_rows(segmenter, label: str, refine_target: str | None) -> list[dict]:
    from engine.segment.sam import Prompt, segment_concepts, segment_image

    photos = _photos()
    per_photo = []
    for name, image in photos.items():
        segmenter.forget()
        seconds, _ = _timed(lambda im=image, n=name: segment_image(segmenter, im, n))
        per_photo.append(seconds)
    image = photos["coffee"]
    segment_image(segmenter, image, "coffee")  # the photo's embedding is now cached
    runs = segmenter.encoder_runs
    clicks = [Prompt(points=(CLICK["coffee"],), labels=(1,)),
              Prompt(points=(CLICK["coffee"], (560, 200)), labels=(1, 0)),
              Prompt(points=(CLICK["coffee"],), labels=(1,), box=USER_BOXES["coffee"])]
    refine_times = [_timed(lambda p=p: segment_image(segmenter, image, "coffee", p))[0]
                    for p in clicks for _ in range(3)]
    predictor = segmenter.predictor
    decoder_only, _ = _timed(lambda: predictor.predict(
        point_coords=np.array([CLICK["coffee"]], np.float32), point_labels=np.array([1]),
        multimask_output=False), 5)
    multi, _ = _timed(lambda: segment_concepts(segmenter, image, "coffee", {
        1: Prompt(box=USER_BOXES["coffee"]), 2: Prompt(box=(320, 55, 430, 335))}))
    assert segmenter.encoder_runs == runs, "a refinement ran the encoder"
    row = {"metric": f"{label}: refinement click, cached embedding (median of 9)",
           "value": statistics.median(refine_times) * 1000, "unit": "ms",
           "note": "prompt decoder + mask clean-up + rescale, 600×400 photo"}
    if refine_target:
        row["target"] = refine_target
    return [
        {"metric": f"{label}: time per photo, automatic (median of 3 photos)",
         "value": statistics.median(per_photo), "unit": "s",
         "note": "encoder + 6 candidates + clean-up; max " + f"{max(per_photo):.2f} s"},
        row,
        {"metric": f"{label}: SamPredictor.predict, the library's path (median of 5)",
         "value": decoder_only * 1000, "unit": "ms",
         "note": "for comparison: upscales every candidate in torch"},
        {"metric": f"{label}: two concepts by box in one photo, cached embedding",
         "value": multi * 1000, "unit": "ms"},
    ]


@benchmark("segment-sam-tiny")
def tiny_sam() -> list[dict]:
    from engine.segment.sam import load_segmenter_for

    segmenter = load_segmenter_for("tiny", "cpu", "sam")
    return _sam_rows(segmenter, "tiny SAM (random)", None)


@benchmark("segment-sam-vit-b")
def vit_b() -> list[dict]:
    import torch

    from engine.models.tiny import save_random_sam
    from engine.segment.sam import load_segmenter_for

    folder = Path(tempfile.mkdtemp(prefix="bench-sam-vit-b-"))
    try:
        save_random_sam({"arch": "vit_b"}, folder)
        load_s, segmenter = _timed(lambda: load_segmenter_for(
            "sd15", "cpu", "sam", overrides={"segmenter": str(folder)}))
        image = _photos()["coffee"]
        encode_s, _ = _timed(lambda: segmenter.embed(np.asarray(image.rgb), "encoder-only"))
        rows = [{"metric": "SAM ViT-B (random weights): load through the safe loader",
                 "value": load_s, "unit": "s", "note": "safetensors, 358 MB"},
                {"metric": "SAM ViT-B: image encoder alone, 1024² input, CPU",
                 "value": encode_s, "unit": "s", "note": f"{torch.get_num_threads()} thread(s)"}]
        return rows + _sam_rows(segmenter, "SAM ViT-B", "< 200 ms")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
