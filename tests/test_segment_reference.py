"""The GrabCut fallback's automatic masks against the hand-checked reference masks, and the
plausibility flag a stored mask carries.

The bar comes from the benchmark (tests/benchmarks/bench_segment.py, "segment-fallback"): on
the four reference photos the automatic masks measured mean IoU 0.786 and worst 0.695 (the
astronaut), where the single centre box before them gave 0.638 and 0.049 (the rocket: half the
sky). The bar sits a little under the measured figures, so a change that makes any photo's mask
clearly worse fails here.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from reference_photos import PHOTOS, automatic_ious

MEAN_BAR = 0.75
WORST_BAR = 0.65


def test_automatic_fallback_masks_meet_the_bar_on_every_reference_photo():
    from engine.segment.grabcut import GrabCutSegmenter

    ious = automatic_ious(GrabCutSegmenter())
    table = ", ".join(f"{name} {iou:.3f} ({share:.0%})" for name, (iou, share) in ious.items())
    assert set(ious) == set(PHOTOS)
    assert statistics.mean(iou for iou, _ in ious.values()) >= MEAN_BAR, table
    assert min(iou for iou, _ in ious.values()) >= WORST_BAR, table
    # Neither failure the single centre box had: half the sky for the rocket, or a part.
    assert all(0.5 < share / ref_share < 1.6 for (_, share), ref_share in zip(
        ious.values(), _reference_shares(), strict=True)), table


def _reference_shares() -> list[float]:
    from reference_photos import reference_mask

    return [float(reference_mask(name).mean()) for name in PHOTOS]


@pytest.mark.parametrize(("area", "flagged"), [
    (0.999, "did not find the object"), (0.93, "did not find the object"), (0.9, ""),
    (0.03, ""), (0.008, "fragment"), (0.0001, "fragment")])
def test_implausible_coverage_is_named(area, flagged):
    from engine.segment.segment_photos import implausible

    reason = implausible(area)
    assert (flagged in reason) if flagged else reason == ""


def test_a_stored_mask_carries_its_flag_and_a_painted_one_none(tmp_path):
    from PIL import Image

    from engine.intake import load_photo
    from engine.project import Project
    from engine.segment.sam import SegmentResult
    from engine.segment.segment_photos import save_result

    photo_file = tmp_path / "wall.png"
    Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(photo_file)
    with Project.create(tmp_path / "p", "Flags") as project:
        concept = project.add_concept("Wall", "wall")
        rel = project.put_file(photo_file)
        photo = project.add_photo(concept.id, rel, project.sha256_of(rel), "wall.png", 60, 40)
        image = load_photo(project, photo)
        almost_all = np.ones((40, 60), bool)
        almost_all[0, 0] = False
        auto = save_result(project, photo, concept.id, SegmentResult(
            almost_all, "fallback-grabcut", True, "GrabCut"), image, profile="sd15")
        fine = np.zeros((40, 60), bool)
        fine[10:30, 15:45] = True
        plain = save_result(project, photo, concept.id, SegmentResult(
            fine, "fallback-grabcut", True, "GrabCut"), image, profile="sd15")
        painted = save_result(project, photo, concept.id, SegmentResult(
            almost_all, "painted", False, "painted by hand"), image)
        stored = {m.id: m for m in project.masks()}
    assert "100% of the photo" in stored[auto.id].flag
    assert stored[auto.id].profile == "sd15" and not stored[auto.id].test_model
    assert stored[plain.id].flag == "" and stored[painted.id].flag == ""
