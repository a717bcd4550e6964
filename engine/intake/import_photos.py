"""Import photos into a concept: check each file, copy its bytes into the project untouched,
record it. A file that fails is reported with its name and leaves no trace; the others go in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.atomic import free_bytes, is_disk_full, megabytes
from engine.errors import DiskFullError, InputError, ProjectError
from engine.intake.photos import FORMAT_EXTENSIONS, MAX_PHOTOS_PER_CONCEPT, read_image_file

if TYPE_CHECKING:
    from engine.intake.jobs import ImportedPhotos, ImportPhotosParams
    from engine.jobs import JobContext
    from engine.project import Photo, Project
    from engine.reporting import Reporter


@dataclass(frozen=True)
class ImportFailure:
    path: str
    reason: str  # "<file name>: <why>", one line

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass
class ImportReport:
    """What importing a batch did: one failed file never stops the others."""

    imported: list[Photo] = field(default_factory=list)
    duplicates: list[Photo] = field(default_factory=list)  # already in this concept
    failed: list[ImportFailure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # "<file name>: <what was normalised>"

    def to_dict(self) -> dict[str, Any]:
        return {
            "imported": [{"id": p.id, "name": p.original_name, "width": p.width,
                          "height": p.height} for p in self.imported],
            "duplicates": [{"id": p.id, "name": p.original_name} for p in self.duplicates],
            "failed": [f.to_dict() for f in self.failed],
            "notes": list(self.notes),
        }


def _size_of(path: str | Path) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def import_one(project: Project, concept_id: int, path: str | Path,
               report: ImportReport) -> None:
    """Check, copy and record one file; raises InputError naming it (nothing written)."""
    name = Path(path).name
    data, image = read_image_file(path)
    ext = FORMAT_EXTENSIONS.get(image.format, "png")
    rel, created = project.put_bytes_tracked(data, ext)
    sha = hashlib.sha256(data).hexdigest()
    known = {p.sha256 for p in project.photos(concept_id)}
    try:
        photo = project.add_photo(concept_id, rel, sha, name, *image.size)
    except BaseException:
        if created:  # leave the project as it was: no orphan file
            project.abspath(rel).unlink(missing_ok=True)
        raise
    if sha in known:
        report.duplicates.append(photo)
        return
    report.imported.append(photo)
    report.notes.extend(f"{name}: {note}" for note in image.notes)


class PhotoNotStored(DiskFullError):
    """The disk filled up while storing photo `name`: the photos before it are in, the
    rest (`remaining`, this one included) are not."""

    def __init__(self, message: str, name: str, needed: int, remaining: list[str]) -> None:
        super().__init__(message)
        self.name, self.needed, self.remaining = name, needed, remaining


def import_photos(project: Project, concept_id: int, paths: Sequence[str | Path],
                  ctx: Reporter | None = None,
                  report: ImportReport | None = None) -> ImportReport:
    """Import photos into a concept. Files that fail are reported and leave no trace. A full
    disk stops the batch with PhotoNotStored; `report` (when given) then holds what was
    imported before it."""
    project.concept(concept_id)  # a clear error for an unknown concept, before any work
    report = ImportReport() if report is None else report
    total = len(paths)
    for step, path in enumerate(paths):
        name = Path(path).name
        if ctx is not None:
            ctx.progress(step, total, f"importing {name}")
        if len(project.photos(concept_id)) >= MAX_PHOTOS_PER_CONCEPT:
            report.failed.append(ImportFailure(str(path), (
                f"{name}: the concept already has {MAX_PHOTOS_PER_CONCEPT} photos, the most "
                "it takes")))
            continue
        try:
            import_one(project, concept_id, path, report)
        except InputError as exc:
            report.failed.append(ImportFailure(str(path), str(exc)))
        except (OSError, ProjectError) as exc:
            if not is_disk_full(exc):
                raise
            needed = _size_of(path)
            raise PhotoNotStored(
                f"No space left on the disk of {project.root} for {name} (it needs about "
                f"{megabytes(needed)}, {megabytes(free_bytes(project.root))} free)", name,
                needed, [str(p) for p in paths[step:]]) from exc
    if ctx is not None:
        ctx.progress(total, total, "imported")
    return report


def import_photos_job(ctx: JobContext, params: ImportPhotosParams) -> ImportedPhotos:
    """Job "import-photos": create the concept if new, then import. A new concept that ends
    up with no photo is removed again, so a wholly failed batch changes nothing."""
    from engine.intake.jobs import ImportedPhotos
    from engine.project import Project

    with Project.open(params.project) as proj:
        existing = proj.concept_by_name(params.concept)
        if existing is None:
            if not params.class_word:
                raise InputError(f"Concept {params.concept!r} is new: give its class word "
                                 "(e.g. --class cat)")
            target = proj.add_concept(params.concept, params.class_word, params.token)
        else:
            target = existing
            if params.class_word and params.class_word != existing.class_word:
                target = proj.set_class_word(existing.id, params.class_word)
                ctx.log(f"Class word of {existing.name!r} changed to {params.class_word!r}")
        report = ImportReport()
        try:
            import_photos(proj, target.id, params.paths, ctx, report)
        except PhotoNotStored as stop:
            saved = _what_was_kept(target.name, existing is None, report, stop)
            raise DiskFullError(f"{stop}. {saved}") from stop
        finally:
            if existing is None and not proj.photos(target.id):
                proj.delete_concept(target.id)
        for failure in report.failed:
            ctx.log(failure.reason, "warning")
        for note in report.notes:
            ctx.log(note)
        kept = existing is not None or bool(report.imported or report.duplicates)
        return ImportedPhotos(concept_id=target.id, name=target.name, token=target.token,
                              class_word=target.class_word, created=existing is None and kept,
                              kept=kept, **report.to_dict())


def _what_was_kept(concept: str, new: bool, report: ImportReport, stop: PhotoNotStored) -> str:
    """After a full disk stopped a batch: what is in the project now, and what to do."""
    done = [p.original_name for p in report.imported]
    if done:
        photos = f"{len(done)} photo{'s' * (len(done) != 1)} imported before it ({', '.join(done)})"
        kept = (f"Kept: the new concept {concept!r} with the {photos}" if new else
                f"Kept in {concept!r}: the {photos}")
    elif new:
        kept = f"Nothing was kept: the new concept {concept!r} had no photo yet and was removed"
    else:
        kept = f"Nothing new was kept in {concept!r}"
    rest = [Path(p).name for p in stop.remaining]
    shown = ", ".join(rest[:5]) + (f" and {len(rest) - 5} more" if len(rest) > 5 else "")
    return (f"{kept}; not imported: {shown}. Free some space, then add those photos again "
            f"(mycanvas add-concept PROJECT {concept!r} ...).")
