"""A project with only photos (the scikit-image cat twice, the coffee mug, the rocket as three
concepts): the state Personalize starts from, for its tests and its benchmark."""

from __future__ import annotations

from pathlib import Path


def make_photos_only_project(folder: Path, title: str = "Only photos") -> Path:
    """Create the project at `folder`, its photos in a sibling folder; returns `folder`."""
    from PIL import Image
    from skimage import data

    from engine.jobs import JobFinished, run_inline
    from engine.project import Project

    photos = folder.parent / f"{folder.name}-photos"
    photos.mkdir(parents=True)
    Image.fromarray(data.chelsea()).save(photos / "chelsea.png")
    Image.fromarray(data.chelsea()[:, ::-1][20:, 30:].copy()).save(photos / "chelsea-2.jpg")
    Image.fromarray(data.coffee()).save(photos / "coffee.jpg")
    Image.fromarray(data.rocket()).save(photos / "rocket.jpg")
    Project.create(folder, title).close()
    for name, word, files in (("Mochi", "cat", ["chelsea.png", "chelsea-2.jpg"]),
                              ("Cup", "mug", ["coffee.jpg"]),
                              ("Rocket", "rocket", ["rocket.jpg"])):
        end = run_inline("import-photos", {"project": str(folder), "concept": name,
                                           "class_word": word,
                                           "paths": [str(photos / f) for f in files]})
        assert isinstance(end, JobFinished), end
    return folder
