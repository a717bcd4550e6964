"""SD 1.5 pipeline folders with random weights, built once and kept for later runs."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from run import REPO


def sd15_folders(root: Path) -> tuple[Path, Path]:
    """(inpainting, text-to-image) folders in the layout of the real download (seed 0); a
    `complete` mark written last, so a cut-short build is made again."""
    sys.path.insert(0, str(REPO / "tests"))
    from sd15_random import build_sd15_inpaint_random
    from sd15_text2image import build_sd15_pipeline

    inpaint, base = root / "sd15-inpaint", root / "sd15-base"
    if not (inpaint / "complete").exists():
        shutil.rmtree(inpaint, ignore_errors=True)
        build_sd15_inpaint_random(inpaint)
        (inpaint / "complete").write_text("seed 0\n")
    if not (base / "complete").exists():
        shutil.rmtree(base, ignore_errors=True)
        build_sd15_pipeline().save_pretrained(str(base), safe_serialization=True)
        (base / "complete").write_text("seed 0\n")
    return inpaint, base
