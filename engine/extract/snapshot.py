"""What an extraction run works on, checked before anything is written, then recorded.

The photo: a photo already in the project (by id, under any concept) or an image file
(checked and stored content-addressed, once). Each concept to extract: its name and class
word, and optionally a box or clicks on the photo. A concept of that name that exists already
is reused (its class word must match): that is how "fix a mask and re-run" finds its
concepts again; a new one is added with a fresh token.

Each concept gets the photo as one of its own photos (a photo record pointing at the same
content-addressed file, no copy), so its masks and cut-out hang where every other stage looks
for a concept's masks. All checks come first: a bad input raises InputError naming it and
leaves the project as it was.

The snapshot is stored with the run (runs/<id>/dataset.json): the photo's file and hash,
the concepts with their photo records, tokens and prompts, the project mask each started
from (when it did) and the background token. A resumed run works on exactly that.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.train import ConceptRef

if TYPE_CHECKING:
    from engine.project import Project

MAX_CONCEPTS = 4  # the paper extracts up to ~3 entangled concepts from a photo
SNAPSHOT_VERSION = 1
BACKGROUND_WORD = "background"


@dataclass(frozen=True)
class ConceptSpec:
    """One concept as asked for: name, class word, and what the user pointed at (photo
    pixels): {"box": [x0, y0, x1, y1] or None, "points": [[x, y]...], "labels": [1/0...]}."""

    name: str
    class_word: str
    prompt: dict[str, Any] | None = None


@dataclass(frozen=True)
class ExtractConcept:
    concept_id: int
    name: str
    token: str
    class_word: str
    photo_id: int  # the concept's own record of the photo
    prompt: dict[str, Any] | None = None
    start_mask: str | None = None  # the project mask file it starts from, if any

    @property
    def ref(self) -> ConceptRef:
        return ConceptRef(self.token, self.class_word)


@dataclass(frozen=True)
class ExtractSnapshot:
    snapshot_id: str
    photo_file: str
    photo_sha256: str
    photo_name: str
    width: int
    height: int
    concepts: tuple[ExtractConcept, ...]
    background_token: str | None = None

    @property
    def refs(self) -> list[ConceptRef]:
        """The tokens in training order: the concepts, then the background token."""
        refs = [c.ref for c in self.concepts]
        if self.background_token:
            refs.append(ConceptRef(self.background_token, BACKGROUND_WORD))
        return refs

    def body(self) -> dict[str, Any]:
        return {"photo_file": self.photo_file, "photo_sha256": self.photo_sha256,
                "photo_name": self.photo_name, "width": self.width, "height": self.height,
                "concepts": [asdict(c) for c in self.concepts],
                "background_token": self.background_token}

    def to_json(self) -> str:
        return json.dumps({"version": SNAPSHOT_VERSION, "snapshot_id": self.snapshot_id,
                           **self.body()}, indent=1, ensure_ascii=False)

    @classmethod
    def make(cls, **fields_: Any) -> ExtractSnapshot:
        draft = cls(snapshot_id="", **fields_)
        digest = hashlib.sha256(json.dumps(draft.body(), sort_keys=True, ensure_ascii=False)
                                .encode("utf-8")).hexdigest()[:16]
        return cls(snapshot_id=digest, **fields_)

    @classmethod
    def from_json(cls, text: str, where: str) -> ExtractSnapshot:
        try:
            data = json.loads(text)
            concepts = tuple(ExtractConcept(**c) for c in data["concepts"])
            snapshot = cls.make(photo_file=data["photo_file"], photo_sha256=data["photo_sha256"],
                                photo_name=data["photo_name"], width=int(data["width"]),
                                height=int(data["height"]), concepts=concepts,
                                background_token=data.get("background_token"))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{where}: not a readable extraction snapshot ({exc})") from exc
        if snapshot.snapshot_id != data.get("snapshot_id"):
            raise InputError(f"{where}: the extraction snapshot does not match its id")
        return snapshot


# --------------------------------------------------------------------------- inputs


def parse_concepts(text: str) -> list[tuple[str, str]]:
    """'mochi:cat,rex:dog' -> [('mochi', 'cat'), ('rex', 'dog')]."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        name, sep, word = part.partition(":")
        if not part or not sep or not name.strip() or not word.strip():
            raise InputError(f"--concepts takes name:class pairs separated by commas, e.g. "
                             f"mochi:cat,rex:dog; got {part!r}")
        out.append((name.strip(), word.strip()))
    return out


def spec_from_dict(raw: Any, index: int) -> ConceptSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or \
            not isinstance(raw.get("class_word"), str):
        raise InputError(f"concepts[{index}] needs a name and a class_word, got {raw!r}")
    name, word = raw["name"].strip(), raw["class_word"].strip()
    if not name or not word:
        raise InputError(f"concepts[{index}] needs a name and a class_word, got {raw!r}")
    prompt = None
    if raw.get("box") is not None or raw.get("points"):
        prompt = {"box": raw.get("box"), "points": raw.get("points") or [],
                  "labels": raw.get("labels") or []}
    return ConceptSpec(name, word, prompt)


@dataclass
class PhotoSource:
    """The photo, read and checked: from the project (photo_id) or from a file (data)."""

    name: str
    sha256: str
    width: int
    height: int
    photo_id: int | None = None
    file: str | None = None  # project-relative, when it is in the project
    data: bytes | None = None  # the file's bytes, to store
    ext: str = "png"


def read_photo_source(project: Project, photo: str) -> PhotoSource:
    from engine.intake import FORMAT_EXTENSIONS, read_image_file

    text = photo.strip()
    if text.isdigit() and not Path(text).is_file():
        found = project.photo(int(text))  # InputError "No photo with id N" if none
        return PhotoSource(found.original_name or Path(found.file).name, found.sha256,
                           found.width, found.height, photo_id=found.id, file=found.file)
    data, image = read_image_file(text)
    ext = FORMAT_EXTENSIONS.get(image.format, "png")
    return PhotoSource(Path(text).name, hashlib.sha256(data).hexdigest(), *image.size,
                       data=data, ext=ext)


def check_specs(project: Project, specs: list[ConceptSpec], source: PhotoSource,
                start_from_masks: bool) -> None:
    """Every refusal before anything is written."""
    from engine.project.catalogue import clean_label

    if not 1 <= len(specs) <= MAX_CONCEPTS:
        raise InputError(f"Name 1 to {MAX_CONCEPTS} concepts to extract, got {len(specs)}")
    seen: set[str] = set()
    for spec in specs:
        name = clean_label(spec.name, "Concept name")
        clean_label(spec.class_word, "Class word")
        if name.casefold() in seen:
            raise InputError(f"Concept {name!r} is named twice")
        seen.add(name.casefold())
        existing = project.concept_by_name(name)
        if existing is not None and existing.class_word.casefold() != \
                spec.class_word.strip().casefold():
            raise InputError(f"Concept {existing.name!r} is a {existing.class_word}, not a "
                             f"{spec.class_word}; use another name")
        if spec.prompt is not None:
            _check_prompt(spec, source)
    words: dict[str, list[str]] = {}
    for spec in specs:
        if spec.prompt is None and not (start_from_masks and _has_mask(project, spec, source)):
            words.setdefault(spec.class_word.strip().casefold(), []).append(spec.name)
    for spec in specs:  # a word shared with a concept that only has its word to go by
        alike = [s.name for s in specs if s.class_word.strip().casefold()
                 == spec.class_word.strip().casefold()]
        blind = words.get(spec.class_word.strip().casefold(), [])
        if len(alike) > 1 and blind:
            raise InputError(f"{' and '.join(alike)} are both {spec.class_word}s: their class "
                             f"word cannot tell them apart; give {blind[0]} a box (--box)")


def _has_mask(project: Project, spec: ConceptSpec, source: PhotoSource) -> bool:
    """Whether the concept exists and has a mask on this photo to start from."""
    concept = project.concept_by_name(spec.name)
    if concept is None:
        return False
    masks = project.current_masks(concept.id)
    return any(p.id in masks for p in project.photos(concept.id) if p.sha256 == source.sha256)


def _check_prompt(spec: ConceptSpec, source: PhotoSource) -> None:
    from engine.segment import Prompt

    prompt = Prompt.from_dict(spec.prompt or {})  # InputError for a malformed one
    w, h = source.width, source.height
    if prompt.box is not None:
        x0, y0, x1, y1 = prompt.box
        if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
            raise InputError(f"The box of {spec.name} {list(prompt.box)} lies outside the "
                             f"photo ({w}×{h})")
    for x, y in prompt.points:
        if not (0 <= x < w and 0 <= y < h):
            raise InputError(f"A click for {spec.name} ({x:g}, {y:g}) lies outside the photo "
                             f"({w}×{h})")


def record_concepts(project: Project, specs: list[ConceptSpec], source: PhotoSource,
                    start_from_masks: bool, background_token: bool) -> ExtractSnapshot:
    """Add the new concepts and their photo records; the snapshot of the run. The caller
    runs it inside `project.provisional()`, which takes them back if the job fails."""
    if source.file is None:
        assert source.data is not None
        source.file = project.put_bytes(source.data, source.ext)
    concepts = []
    for spec in specs:
        concept = project.concept_by_name(spec.name)
        if concept is None:
            concept = project.add_concept(spec.name, spec.class_word)
        photo = project.add_photo(concept.id, source.file, source.sha256, source.name,
                                  source.width, source.height)
        start = None
        if start_from_masks and spec.prompt is None:
            current = project.current_masks(concept.id).get(photo.id)
            start = current.file if current is not None else None
        concepts.append(ExtractConcept(concept.id, concept.name, concept.token,
                                       concept.class_word, photo.id, spec.prompt, start))
    background = None
    if background_token:  # not a project concept: a token of this run only
        taken = {c.token for c in project.concepts()}
        background, n = "<background>", 2
        while background in taken:
            background, n = f"<background{n}>", n + 1
    return ExtractSnapshot.make(photo_file=source.file, photo_sha256=source.sha256,
                                photo_name=source.name, width=source.width,
                                height=source.height, concepts=tuple(concepts),
                                background_token=background)
