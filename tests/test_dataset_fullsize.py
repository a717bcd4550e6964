"""The builder with SD 1.5's full-size inpainting architecture (random weights), at 512 px."""

from __future__ import annotations

import resource

import numpy as np
import pytest
from PIL import Image

from engine.dataset.inpaint import InpaintSettings
from engine.jobs import JobFinished, run_inline
from engine.masks import erode
from engine.project import Project

from dataset_project import make_dataset_project  # isort: skip
from sd15_random import build_sd15_inpaint_random  # isort: skip

GIB = 1024**3


@pytest.mark.slow
def test_full_size_sd15_inpainting_builds_one_512_item(tmp_path, tiny_models):
    from engine.models.loaders import load_inpaint

    folder = build_sd15_inpaint_random(tmp_path / "sd15-inpaint")
    pipe = load_inpaint(folder, "cpu")
    assert pipe.unet.config.in_channels == 9 and pipe.vae_scale_factor == 8
    assert pipe.unet.dtype == pipe.vae.dtype == pipe.text_encoder.dtype
    assert str(pipe.unet.dtype) == "torch.float32"  # a CPU computes in fp32
    params = sum(p.numel() for p in pipe.unet.parameters())
    assert 850e6 < params < 870e6  # SD 1.5's UNet: ~860 M parameters
    del pipe
    project_dir = make_dataset_project(tmp_path / "project", photo_side=512)
    end = run_inline("build-dataset", {
        "project": str(project_dir), "count": 1, "profile": "tiny", "device": "cpu",
        "steps": 3, "resolution": 512, "overrides": {"inpaint": str(folder)}})
    assert isinstance(end, JobFinished), getattr(end, "detail", end)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak < 14 * GIB, f"peak RSS {peak / GIB:.1f} GiB"
    with Project.open(project_dir) as project:
        (item,) = project.dataset_items()
        image = np.asarray(Image.open(project.abspath(item.image_file)))
        assert image.shape == (512, 512, 3) and image.dtype == np.uint8
        grow, blur = InpaintSettings().seam_pixels(512)
        assert (grow, blur) == (3, 4)
        layout = project.layout(item.layout_id)
        for obj in layout.objects:
            mask = np.asarray(Image.open(project.abspath(item.masks[obj.concept_id]))) > 127
            assert mask.shape == (512, 512) and mask.sum() > 1000
        assert item.provenance["size"] == 512 and item.provenance["settings"]["steps"] == 3
        # Identity at full size: the (eroded) object pixels are the composite's; the
        # composite's object pixels are not what random weights would paint.
        inner = erode(mask, grow + 3 * blur)
        assert inner.sum() > 500
        from engine.dataset.compose import compose, load_cutout

        cutouts = {p["concept_id"]: load_cutout(project, next(
            m for m in project.masks() if m.id == p["mask_id"]))
            for p in item.provenance["placements"]}
        composite = np.asarray(compose(layout, cutouts, 512, item.provenance["seed"]).image)
        assert np.array_equal(image[inner], composite[inner])
