"""The intake stage's job, declared once: import photos into a (new) concept."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.jobs.declaration import JobDeclaration, JobResult, ProjectParams, param


@dataclass(frozen=True, kw_only=True)
class ImportPhotosParams(ProjectParams):
    concept: str = param(positional=True, metavar="name",
                         help="the concept's name, e.g. Mochi (new or existing)")
    paths: list[str] = param(positional=True, nargs="+", metavar="photos",
                             help="photo files or folders of photos")
    class_word: str | None = param(None, flag="--class", help=(
        "what it is, in one word (cat, cactus, teapot); needed for a new concept"))
    token: str | None = param(None, help="its token, e.g. <mochi> (default: from the name)")


@dataclass(frozen=True)
class ImportedPhotos(JobResult):
    concept_id: int
    name: str
    token: str
    class_word: str
    created: bool
    kept: bool = True  # False: a new concept none of whose photos went in, so not kept
    imported: list[dict[str, Any]] = field(default_factory=list)  # id, name, width, height
    duplicates: list[dict[str, Any]] = field(default_factory=list)  # id, name
    failed: list[dict[str, str]] = field(default_factory=list)  # path, reason
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.kept:
            return (f"No concept {self.name!r} was created: none of its "
                    f"{len(self.failed)} photo(s) could be imported")
        state = "new" if self.created else "existing"
        return (f"{self.token} {self.name} ({self.class_word}, {state} concept): "
                f"{len(self.imported)} photo(s) imported, {len(self.duplicates)} already there, "
                f"{len(self.failed)} failed")


def _title(params: ImportPhotosParams) -> str:
    n = len(params.paths)
    return f"Add {n} photo{'' if n == 1 else 's'} to {params.concept}"


IMPORT_PHOTOS = JobDeclaration(
    "import-photos", "engine.intake.import_photos:import_photos_job", ImportPhotosParams,
    ImportedPhotos, title=_title, resumable=True, changes=("concepts", "photos"),
    help="add a concept (your pet, plant, mug) with 1-20 photos")
JOBS = (IMPORT_PHOTOS,)
