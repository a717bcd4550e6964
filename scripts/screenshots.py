"""Screenshots of every screen of the desktop app, from a demo project made on the spot.

    python scripts/screenshots.py [OUT_DIR]        # default packaging/screenshots
    python scripts/screenshots.py OUT_DIR --scene train-resumed   # one scene only

First the start page (no project open) and the welcome page of an empty project. The demo
project is made the way a user would make it, through the engine's jobs: the
scikit-image sample photos imported as concepts, masks from the classical fallback (GrabCut,
plus a box for the rocket), layouts from the real planner model, a dataset built on the `tiny`
profile (its pictures are noise, and the window says so), a short training run, pictures
generated from it (one batch layout-guided) and scored, and a short extraction from one photo.
Then the gallery's trash view and the confirmation of a concept delete.
Then the window is opened offscreen (or on Xvfb when DISPLAY is set) and each screen is
grabbed. Last, a training run is cut short as by a quit and resumed from the resume bar: the
Train page while the resumed run trains. Settings and recent projects go
to a temporary folder, never to the user's; the tiny models are built in the app's data
folder if they are not there yet. `--scene train-resumed` makes only what that scene needs
(the project up to its dataset) and shoots only it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MAX_BYTES = 300_000


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(name: str, params: dict, title: str = "") -> Any:
    from engine.jobs import JobFinished, run_inline

    log(f"  {name} …")
    end = run_inline(name, params, title=title)
    if not isinstance(end, JobFinished):
        raise SystemExit(f"{name} failed: {getattr(end, 'reason', end)}")
    return end.result


def make_photos(folder: Path) -> dict[str, Path]:
    from PIL import Image
    from skimage import data

    cats = folder / "Mochi"
    cats.mkdir(parents=True)
    paths = {"chelsea": cats / "chelsea.jpg", "chelsea-2": cats / "chelsea-sofa.jpg",
             "coffee": folder / "coffee.jpg", "rocket": folder / "rocket.jpg",
             "astronaut": folder / "astronaut.jpg", "bad": folder / "notes.jpg"}
    Image.fromarray(data.chelsea()).save(paths["chelsea"], quality=92)
    Image.fromarray(data.chelsea()[:, ::-1][10:, 20:].copy()).save(paths["chelsea-2"],
                                                                   quality=92)
    Image.fromarray(data.coffee()).save(paths["coffee"], quality=92)
    Image.fromarray(data.rocket()).save(paths["rocket"], quality=92)
    Image.fromarray(data.astronaut()).save(paths["astronaut"], quality=92)
    paths["bad"].write_text("a shopping list, not a photo")
    return paths


def make_project(root: Path, photos: dict[str, Path], full: bool = True) -> Path:
    from engine.project import Project

    log("demo project:")
    folder = root / "Demo garden"
    Project.create(folder, "Demo garden").close()
    base = {"project": str(folder)}
    run("import-photos", {**base, "concept": "Mochi", "class_word": "cat", "token": "<mochi>",
                          "paths": [str(photos["chelsea"]), str(photos["chelsea-2"])]})
    run("import-photos", {**base, "concept": "Cup", "class_word": "mug", "token": "<cup>",
                          "paths": [str(photos["coffee"])]})
    rocket = run("import-photos", {**base, "concept": "Rocket", "class_word": "toy rocket",
                                   "token": "<rocket>", "paths": [str(photos["rocket"])]})
    run("segment", {**base, "profile": "tiny", "device": "cpu", "method": "fallback",
                    "concept": "Mochi"})
    run("segment", {**base, "profile": "tiny", "device": "cpu", "method": "fallback",
                    "concept": "Cup"})
    photo_id = rocket.imported[0]["id"]
    run("segment-prompts", {**base, "photo_id": photo_id, "profile": "tiny", "device": "cpu",
                            "method": "fallback", "prompts": [
                                {"concept": "Rocket", "box": [295, 120, 345, 408],
                                 "points": [[320, 260]], "labels": [1]}]})
    run("plan", {**base, "count": 4, "seed": 7, "profile": "tiny"})
    run("build-dataset", {**base, "count": 8, "profile": "tiny", "device": "cpu", "steps": 4,
                          "resolution": 128})
    with Project.open(folder) as project:
        items = project.dataset_items()
        project.set_review_state(items[1].id, "accepted")
        project.set_review_state(items[4].id, "rejected")
        layout_id = next(lay.id for lay in project.layouts() if len(lay.objects) >= 2)
    if not full:
        return folder
    stage = {**base, "profile": "tiny", "device": "cpu"}
    run("train", {**stage, "config": {"steps": 60, "sample_every": 10, "checkpoint_every": 30,
                                      "learning_rate": 1e-3}})
    run("generate", {**stage, "prompt": "<mochi> cat and <cup> mug on a sunny beach",
                     "count": 6, "steps": 12, "seed": 11})
    run("generate", {**stage, "layout_id": layout_id, "count": 6, "steps": 12, "seed": 40})
    run("score", stage)
    with Project.open(folder) as project:
        pictures = project.gallery(sort="oldest")
        project.set_favourite([pictures[1].id, pictures[7].id])
    run("extract", {**stage, "photo": str(photos["astronaut"]), "segment_method": "fallback",
                    "concepts": [{"name": "Astronaut", "class_word": "person",
                                  "box": [140, 20, 430, 512]},
                                 {"name": "Flag", "class_word": "flag",
                                  "box": [20, 20, 150, 200], "points": [[60, 60]],
                                  "labels": [1]}],
                    "config": {"steps": 12, "iterations": 3, "checkpoint_every": 6}})
    return folder


class Shooter:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.written: list[Path] = []

    def settle(self, seconds: float = 0.6) -> None:
        from PySide6.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    def wait_until(self, condition, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise SystemExit("timed out waiting for the window")
            self.settle(0.1)

    def shoot(self, widget, name: str) -> None:
        from PIL import Image

        self.settle()
        path = self.out / f"{name}.png"
        widget.grab().save(str(path), "PNG")
        if path.stat().st_size > MAX_BYTES:  # fewer colours; a UI keeps its look
            Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
        self.written.append(path)
        log(f"  {path.relative_to(REPO) if path.is_relative_to(REPO) else path} "
            f"({path.stat().st_size // 1024} KB)")


def drop(target, paths: list[Path]) -> None:
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    point = QPointF(target.rect().center())
    rest = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier)
    # The enter event takes an integer QPoint in PySide6 6.11, the drop a QPointF.
    QApplication.sendEvent(target, QDragEnterEvent(point.toPoint(), *rest))
    QApplication.sendEvent(target, QDropEvent(point, *rest))


def shoot_screens(project: Path, photos: dict[str, Path], shots: Shooter) -> None:
    from PySide6.QtWidgets import QApplication

    from desktop_app.main_window import MainWindow
    from engine.settings import Settings

    app = QApplication.instance() or QApplication([sys.argv[0]])
    window = MainWindow(Settings(profile="tiny", device="cpu",
                                 recent_projects=[str(project.resolve())]))
    window.resize(1360, 820)
    window.show()
    shots.wait_until(lambda: window.device_label.text() != "device: detecting…")
    log("screens:")
    # What a new user meets first: no project open, then a project with nothing in it.
    shots.shoot(window, "0a-start")
    window.create_project(project.parent / "My first project")
    shots.shoot(window, "0b-empty-project")
    window.open_project(project)
    shots.wait_until(lambda: not window.thumbs.busy())
    shots.shoot(window, "1-concepts")

    drop(window, [photos["astronaut"], photos["bad"]])
    form = window.concepts_page.form
    form.class_edit.setText("person")
    shots.shoot(window, "2-new-concept")
    form.submit()
    shots.wait_until(lambda: window.concepts_page.problems.count() > 0
                     and not window.jobs.has_running_jobs())
    shots.wait_until(lambda: not window.thumbs.busy())
    shots.shoot(window, "3-import-errors")

    window.state.selected_concept = window.project.concept_by_name("Rocket").id
    rocket_photo = window.project.photos(window.state.selected_concept)[0].id
    window.concepts_page.open_editor(rocket_photo)
    editor = window.concepts_page.editor
    shots.wait_until(lambda: not editor.canvas.mask.isNull())
    editor.set_tool("box")
    shots.shoot(window, "4-mask-editor")
    editor.close_editor()

    window.steps.setCurrentWidget(window.layouts_page)
    canvas = window.layouts_page.canvas
    shots.wait_until(lambda: len(canvas.pixmaps) >= 3)
    first = next(iter(canvas.items_by_concept))
    canvas.select_only(first)
    shots.shoot(window, "5-layout-editor")

    window.steps.setCurrentWidget(window.dataset_page)
    shots.settle(1.0)
    shots.wait_until(lambda: not window.thumbs.busy())
    shots.shoot(window, "6-dataset-review")

    shoot_new_pages(window, photos, shots)
    shoot_trash_and_concept_delete(window, shots)

    window.open_settings()
    shots.shoot(window.settings_dialog, "7-settings")
    window.settings_dialog.reject()
    # The real profile, whose models are missing here: what they are, how big, a folder each.
    manager = window.model_manager
    manager.profile.setCurrentIndex(manager.profile.findData("sd15"))
    manager.show()
    shots.wait_until(lambda: manager.table.rowCount() > 0
                     and manager.table.item(0, 3).text().startswith("stable-diffusion"))
    shots.wait_until(lambda: not manager.loader.busy())  # the Hub asked for exact sizes
    shots.shoot(manager, "8-models")
    window.model_manager.hide()
    window.close()
    app.processEvents()


def shoot_new_pages(window, photos: dict[str, Path], shots: Shooter) -> None:
    """Train, Extract, Generate, the Gallery (grid, one picture large), the Personalize plan,
    and the first run on a profile whose models are missing."""
    page = window.train_page
    window.steps.setCurrentWidget(page)
    page.runs.selectRow(0)
    shots.wait_until(lambda: page.samples.count() > 0 and not window.thumbs.busy())
    shots.shoot(window, "9-train")

    extract = window.extract_page
    window.steps.setCurrentWidget(extract)
    extract.use_file(photos["astronaut"])
    extract.add_concept("Astronaut", "person")
    extract.canvas.set_box(extract.row_key(0), (0.27, 0.04, 0.84, 1.0))
    extract.add_concept("Flag", "flag")
    extract.canvas.set_box(extract.row_key(1), (0.04, 0.04, 0.29, 0.39))
    from engine.extract import read_iterations

    run_id = window.project.runs("em-extract")[-1].id
    extract.view.set_iterations(read_iterations(window.project.root / "runs" / str(run_id)),
                                busy=False)
    shots.wait_until(lambda: not window.thumbs.busy())
    shots.shoot(window, "10-extract")

    gen = window.generate_page
    window.steps.setCurrentWidget(gen)
    gen.run.setCurrentIndex(gen.run.findData(window.project.runs("custom-diffusion")[-1].id))
    gen.prompt.setText("")  # with a layout: its caption
    gen.layout_choice.setCurrentIndex(2)  # the first layout of the project
    gen.form.set_values({"count": 4, "steps": 12})
    gen.generate()
    shots.wait_until(lambda: gen.job is None and not window.jobs.has_running_jobs())
    shots.shoot(window, "11-generate")

    gallery = window.gallery_page
    window.steps.setCurrentWidget(gallery)
    shots.wait_until(lambda: not window.thumbs.busy())
    gallery.grid.setCurrentIndex(gallery.model.index(0))
    shots.shoot(window, "12-gallery")
    guided = next(r for r, image in enumerate(gallery.model.images)
                  if image.guided and image.concepts)
    dialog = gallery._dialog([gallery.model.images[guided]])
    shots.shoot(dialog, "13-gallery-picture")
    dialog.close()

    bar = window.personalize
    bar.show_plan()
    shots.wait_until(lambda: bar.dialog is not None and bar.dialog.isVisible())
    shots.shoot(bar.dialog, "14-personalize-plan")
    bar.dialog.reject()

    # First run: the real profile, its models not on this computer.
    from dataclasses import replace

    window.state.settings = replace(window.settings, profile="sd15")
    window.steps.setCurrentWidget(page)
    shots.wait_until(lambda: window.banner.isVisible())
    shots.shoot(window, "15-first-run")
    window.state.settings = replace(window.settings, profile="tiny")


def interrupt_training(folder: Path) -> None:
    """A training run cut short as when the window quits during it: the journal says
    interrupted (the resume bar offers it), the run keeps its checkpoints."""
    from engine.jobs import CancelToken, JobProgress, run_inline
    from engine.jobs.journal import JournalWriter

    log("  train, cut short …")
    journal, token = JournalWriter(), CancelToken()

    def sink(event: Any) -> None:
        journal(event)
        if isinstance(event, JobProgress) and event.total == 300 and event.step >= 12:
            journal.interrupt_all()
            token.cancel()

    run_inline("train", {"project": str(folder), "profile": "tiny", "device": "cpu",
                         "config": {"steps": 300, "sample_every": 10, "checkpoint_every": 6,
                                    "learning_rate": 1e-3}}, sink, token)
    journal.close()


def shoot_resumed_training(project: Path, shots: Shooter) -> None:
    """The Train page during a run resumed from the resume bar: its chart, samples, time left,
    and Start off while it trains."""
    from PySide6.QtWidgets import QApplication

    from desktop_app.main_window import MainWindow
    from engine.settings import Settings

    interrupt_training(project)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    window = MainWindow(Settings(profile="tiny", device="cpu"))
    window.resize(1360, 820)
    window.show()
    window.open_project(project)
    page = window.train_page
    window.steps.setCurrentWidget(page)
    shots.wait_until(lambda: window.resume_bar.isVisible())
    window.resume_bar.resume_button.click()
    points = page.chart.point_count()
    shots.wait_until(lambda: page.chart.point_count() >= points + 8
                     and page.status.text().startswith("Training run")
                     and page.samples.count() >= 2 and not window.thumbs.busy())
    shots.shoot(window, "18-train-resumed")
    page.cancel()
    shots.wait_until(lambda: not window.jobs.has_running_jobs())
    window.close()
    app.processEvents()


def shoot_trash_and_concept_delete(window, shots: Shooter) -> None:
    """The gallery's Trash view (two rated pictures deleted; put back afterwards) and the
    confirmation of a concept delete, which counts what goes and what stays."""
    from desktop_app.widgets.concept_edit import concept_delete_box

    gallery = window.gallery_page
    window.steps.setCurrentWidget(gallery)
    ids = [image.id for image in gallery.model.images[:2]]
    gallery.rate(ids, 4)
    gallery.project_call("trash_generations", ids)
    trash = gallery.open_trash()
    assert trash is not None
    shots.shoot(trash, "16-gallery-trash")
    trash.restore()
    trash.close()

    window.steps.setCurrentWidget(window.concepts_page)
    concept = window.project.concept_by_name("Mochi")
    window.state.selected_concept = concept.id
    box = concept_delete_box(window.project.concept_footprint(concept.id), window)
    box.show()
    shots.shoot(box, "17-concept-delete")
    box.close()


def main(argv: list[str]) -> int:
    scene = None
    if "--scene" in argv:
        at = argv.index("--scene")
        scene, argv = argv[at + 1], argv[:at] + argv[at + 2:]
        if scene != "train-resumed":
            raise SystemExit(f"unknown scene {scene!r} (known: train-resumed)")
    out = Path(argv[0]) if argv else REPO / "packaging" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mycanvas-shots-") as tmp:
        root = Path(tmp)
        os.environ["MYCANVAS_CONFIG_DIR"] = str(root / "config")
        photos = make_photos(root / "photos")
        project = make_project(root, photos, full=scene is None)
        shots = Shooter(out)
        if scene is None:
            shoot_screens(project, photos, shots)
        shoot_resumed_training(project, shots)
    log(f"wrote {len(shots.written)} screenshots to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
