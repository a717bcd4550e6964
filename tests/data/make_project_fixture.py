"""Write the project fixture of this version: tests/data/projects/schema-<N>/ (N: the
catalogue's schema version), a small project with every kind of record (concepts, photos,
masks, layouts, dataset items, a training run, generated and scored pictures, a report),
made by the real commands on the tiny profile. tests/test_upgrades.py opens every fixture
there with the current version.

Run once per schema version, from the repository root:

    python tests/data/make_project_fixture.py

A fixture is never rewritten: a later version adds its own beside the older ones.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image
from skimage import data

HERE = Path(__file__).resolve().parent


def mycanvas(work: Path, *argv: str) -> None:
    """The command, with the app's folders inside `work` (nothing of this computer's own
    folders ends up in the fixture's records)."""
    env = {**os.environ, "MYCANVAS_DATA_DIR": str(work / "data"),
           "MYCANVAS_CONFIG_DIR": str(work / "config"), "HF_HOME": str(work / "hf")}
    subprocess.run([sys.executable, "-m", "desktop_app.launcher", *argv], check=True, env=env)


def main() -> int:
    from engine import __version__
    from engine.project import CURRENT_VERSION

    target = HERE / "projects" / f"schema-{CURRENT_VERSION}"
    if target.exists():
        print(f"{target} exists; a fixture is never rewritten", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        project = work / "project"
        for name, image in (("cat.jpg", data.chelsea()), ("mug.jpg", data.coffee())):
            photo = Image.fromarray(image)
            photo.thumbnail((160, 160))
            photo.save(work / name, quality=85)
        mycanvas(work, "new", str(project), "--name", f"Written by {__version__}")
        for name, word, photo in (("Mochi", "cat", "cat.jpg"), ("Cup", "mug", "mug.jpg")):
            mycanvas(work, "add-concept", str(project), name, "--class", word, str(work / photo))
        mycanvas(work, "-q", "personalize", str(project), "--preset", "quick", "--profile", "tiny",
                 "--device", "cpu")
        mycanvas(work, "-q", "report", str(project))
        shutil.rmtree(work / "project" / "runs" / "1" / "cache", ignore_errors=True)  # a cache
        # One self-contained file: the WAL folded in, no side files.
        conn = sqlite3.connect(project / "catalogue.sqlite")
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.close()
        shutil.copytree(project, target)
    (target.parent / f"schema-{CURRENT_VERSION}.json").write_text(json.dumps(
        {"app_version": __version__, "schema": CURRENT_VERSION,
         "made_by": "tests/data/make_project_fixture.py"}, indent=2) + "\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
