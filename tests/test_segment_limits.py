"""Segmentation at the edges: a 24-megapixel photo in bounded memory (the GrabCut fallback
works on a bounded copy and the full-size steps run in uint8 or in bands), masks that cover
(nearly) all or nothing are flagged, and the lean full-size steps give the same pixels."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.jobs import JobFinished, JobLog, run_inline
from engine.masks import mask_box
from engine.project import Project

REPO = Path(__file__).resolve().parent.parent


def _grey16_png(path: Path, value: int = 30000, size: tuple[int, int] = (640, 480)) -> Path:
    """A flat grey 16-bit photo: GrabCut finds no edge in it and takes all of it."""
    w, h = size
    image = Image.new("I;16", (w, h))
    image.frombytes(np.full((h, w), value, np.uint16).tobytes(), "raw", "I;16")
    image.save(path)
    return path


def test_a_mask_covering_the_whole_photo_is_flagged(tmp_path):
    from engine.intake.import_photos import import_photos

    folder = tmp_path / "p"
    with Project.create(folder, "P") as project:
        concept = project.add_concept("Slate", "stone")
        import_photos(project, concept.id, [_grey16_png(tmp_path / "grey16.png")])
    events = []
    end = run_inline("segment", {"project": str(folder), "method": "fallback",
                                 "profile": "tiny"}, events.append)
    assert isinstance(end, JobFinished), end
    result = end.result
    assert result.masks[0]["area"] >= 0.97
    # Every concept may have a 03.jpg: the concept is named with the file.
    assert [f["photo"] for f in result.flagged] == ["Slate's grey16.png"]
    assert "covers 100% of the photo" in result.flagged[0]["reason"]
    assert "check: Slate's grey16.png: the mask covers 100%" in result.summary()
    warnings = [e.text for e in events if isinstance(e, JobLog) and e.level == "warning"]
    assert any(w.startswith("Slate's grey16.png: the mask covers 100%") for w in warnings)


def test_coverage_warnings_name_the_photo_and_say_what_to_do():
    from engine.segment.segment_photos import coverage_warning

    assert coverage_warning("a.jpg", 0.5) == "" and coverage_warning("a.jpg", 0.2) == ""
    assert "draw a box" in coverage_warning("a.jpg", 0.99)
    assert coverage_warning("a.jpg", 0.001).startswith("a.jpg: the mask covers only 0.1%")


def _reference_alpha(mask: np.ndarray, r: float) -> np.ndarray:
    """The feather as it was computed before, in one piece and in float: the lean version
    must give the same bytes."""
    import cv2

    k = max(1, round(r))
    inner = cv2.erode(mask.astype(np.uint8),
                      cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    if not inner.any():
        inner = mask.astype(np.uint8)
    soft = cv2.GaussianBlur(inner.astype(np.float32), (0, 0), r / 2)
    soft = np.where(mask, np.maximum(soft, inner), 0.0)
    return np.clip(np.rint(soft * 255), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(6))
def test_banded_cropped_cutouts_equal_the_whole_photo_computation(seed, monkeypatch):
    import engine.segment.cleanup as cleanup

    monkeypatch.setattr(cleanup, "BAND_ROWS", 29)  # many band seams in a small photo
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(60, 500, 2))
    mask = np.zeros((h, w), bool)
    for _ in range(3):
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        mask[y:y + int(rng.integers(1, h)), x:x + int(rng.integers(1, w))] = True
    rgb = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    for r in (0.7, 2.5, 6.0):
        alpha = _reference_alpha(mask, r)
        assert np.array_equal(cleanup.feathered_alpha(mask, r), alpha)
        x0, y0, x1, y1 = mask_box(mask)
        cut = cleanup.make_cutout(rgb, mask, feather=r)
        expected = np.dstack([np.asarray(rgb), alpha])[y0:y1, x0:x1]
        assert np.array_equal(np.asarray(cut), expected)


PEAK_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch  # the job plans the device with torch: its import is not segmentation
    from engine.jobs import run_inline
    from engine.jobs.stage_setup import resolve_stage
    from engine.segment.jobs import SegmentParams

    def status(key):  # kB -> bytes
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    folder, warm = sys.argv[1], sys.argv[2]
    resolve_stage(SegmentParams(project=folder, method="fallback", profile="tiny"))
    # A small photo first: every library is loaded, so what follows is the big photo's cost.
    run_inline("segment", {"project": warm, "method": "fallback", "profile": "tiny"})
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) starts again from here
    before = status("VmRSS")
    end = run_inline("segment", {"project": folder, "method": "fallback", "profile": "tiny"})
    print(json.dumps({"end": type(end).__name__, "extra": status("VmHWM") - before,
                      "reason": getattr(end, "reason", "")}))
""")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(),
                    reason="needs Linux's resettable peak memory (VmHWM)")
def test_a_24_megapixel_photo_segments_in_bounded_memory(tmp_path):
    """The issue measured 2.7 GB for 48 megapixels (about 15 times the decoded photo): the
    fallback's full-size steps now take at most 4 times the decoded photo."""
    from engine.intake.import_photos import import_photos

    w, h = 6000, 4000
    pixels = np.full((h, w, 3), 40, np.uint8)
    pixels[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = (200, 120, 60)
    photo = tmp_path / "big.jpg"
    Image.fromarray(pixels).save(photo, quality=80)
    del pixels
    folder, warm = tmp_path / "p", tmp_path / "warm"
    with Project.create(folder, "P") as project:
        concept = project.add_concept("Box", "box")
        assert import_photos(project, concept.id, [photo]).imported
    with Project.create(warm, "Warm") as project:
        small = Image.new("RGB", (96, 64), (40, 40, 40))
        small.paste((200, 120, 60), (24, 16, 72, 48))
        small.save(tmp_path / "small.png")
        import_photos(project, project.add_concept("Box", "box").id, [tmp_path / "small.png"])
    proc = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(folder), str(warm)],
                          capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["end"] == "JobFinished", out
    decoded = w * h * 3
    assert out["extra"] < 4 * decoded, f"{out['extra'] / 2**20:.0f} MB for a " \
                                       f"{decoded / 2**20:.0f} MB photo"
    with Project.open(folder) as project:
        mask = project.current_masks(concept.id)
        (only,) = mask.values()
        with Image.open(project.abspath(only.file)) as stored:
            assert stored.size == (w, h)  # the mask is the photo's size, upsampled
        with Image.open(project.abspath(only.cutout_file)) as cut:
            assert abs(cut.size[0] - w // 2) < w // 20 and abs(cut.size[1] - h // 2) < h // 20


def test_upsampled_masks_keep_their_shape():
    from engine.masks import resize_mask

    small = np.zeros((100, 150), bool)
    small[25:75, 50:100] = True
    big = resize_mask(small, (600, 400))
    assert big.shape == (400, 600) and big.dtype == bool
    assert abs(big.mean() - small.mean()) < 0.01
    assert mask_box(big) == pytest.approx((200, 100, 400, 300), abs=3)
    assert resize_mask(small, (150, 100)) is not small and np.array_equal(
        resize_mask(small, (150, 100)), small)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, "PNG")
