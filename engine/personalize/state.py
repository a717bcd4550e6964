"""What the chain finds done in a project, and the little it has to remember itself.

Most of it is read from the project as it is, so a rerun after a cancel or a kill knows what
is done without any note of ours: photos with a current mask, dataset items by build index,
a run's checkpoints and status, pictures by the batch each generation records.

Two things the project cannot tell, kept in the catalogue's meta table under "personalize"
(`ChainBook`, JSON), written in the same catalogue as the work it describes:

* **Which layouts the chain planned.** Layouts are deleted for good, so a layout the user
  deleted leaves no trace. The chain counts it anyway: it plans `target - present - deleted`
  more, where `deleted` is the chain-planned layouts no longer there. So a deleted layout is
  never planned again. Before it plans, the chain notes the newest layout id
  (`planning_from`); every layout above it that exists is its own, also after a kill in the
  middle of planning (only a layout deleted between such a kill and the rerun goes uncounted).
* **Which training run is the chain's.** Before a new run starts the chain notes the newest
  run id (`training_from`): the first training run above it is the chain's, also when the
  kill came before the run's id could be noted. With the run it notes the settings it was
  started with (`run_key`); a preset with other settings trains a new run.

Everything else the user made is only read: edited masks (the segment stage skips a photo
with a mask), edited layouts (nothing rewrites a layout), accepted or rejected dataset items
(the builder fills missing indices only), pictures moved to the trash (counted as made).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import InputError

if TYPE_CHECKING:
    from engine.models.profiles import Profile
    from engine.project import Project

META_KEY = "personalize"
BOOK_VERSION = 1
TRAINING_KIND = "custom-diffusion"  # the train stage's runs (engine.train's RUN_KIND)
BATCH_PREFIX = "personalize"


def batch_prefix(run_id: int) -> str:
    """What the batch of each of the chain's pictures from run `run_id` starts with."""
    return f"{BATCH_PREFIX}:{run_id}:"


def picture_batch(run_id: int, layout_id: int) -> str:
    """The generate stage's batch of the chain's pictures of one layout: its resume key."""
    return f"{batch_prefix(run_id)}{layout_id}"


@dataclass
class ChainBook:
    planned_layouts: list[int] = field(default_factory=list)
    planning_from: int | None = None  # set while planning: the newest layout id before it
    run_id: int | None = None
    run_key: str | None = None  # the settings the run was started with
    training_from: int | None = None  # set while a new run starts: the newest run id before
    training_key: str | None = None  # ... and the settings it starts with

    @classmethod
    def read(cls, project: Project) -> ChainBook:
        """The book, or an empty one when there is none or it cannot be read (the chain then
        re-derives what it can: a lost book costs at most a re-planned deleted layout)."""
        raw = project.meta(META_KEY)
        if not raw:
            return cls()
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            data = json.loads(raw)
            if data.get("version") == BOOK_VERSION:
                return cls(
                    planned_layouts=sorted({int(i) for i in data.get("planned_layouts", [])}),
                    planning_from=_int_or_none(data.get("planning_from")),
                    run_id=_int_or_none(data.get("run_id")),
                    run_key=_str_or_none(data.get("run_key")),
                    training_from=_int_or_none(data.get("training_from")),
                    training_key=_str_or_none(data.get("training_key")))
        return cls()

    def write(self, project: Project) -> None:
        project.set_meta(META_KEY, json.dumps({"version": BOOK_VERSION, **asdict(self)}))

    def settle(self, project: Project) -> ChainBook:
        """The book with what an interrupted plan or training left behind taken in."""
        present = {int(layout.id or 0) for layout in project.layouts()}
        book = ChainBook(**asdict(self))
        if book.planning_from is not None:
            book.planned_layouts = sorted(set(book.planned_layouts) |
                                          {i for i in present if i > book.planning_from})
        if book.training_from is not None:
            newer = [r.id for r in project.runs(TRAINING_KIND)
                     if r.id is not None and r.id > book.training_from]
            if newer:  # the run the chain started before it was cut short
                book.run_id, book.run_key = min(newer), book.training_key
                book.training_from = book.training_key = None
        return book

    def settled(self, project: Project) -> ChainBook:
        """`settle`, then the markers forgotten: what the chain does when it starts (it holds
        the project's personalize lock, so no plan or run of its own is under way; a run
        start cut short before its run existed left nothing to take in)."""
        book = self.settle(project)
        book.planning_from = book.training_from = book.training_key = None
        return book


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class RunState:
    run_id: int
    status: str
    steps: int  # the steps it trains in all
    done_steps: int  # steps it has done (its last complete checkpoint, all when finished)
    key: str | None  # the settings the chain started it with
    test_models: bool = False  # trained with test models for a real profile: a new run trains


@dataclass(frozen=True)
class ChainState:
    """What is done, as the plan and the chain see it. Read by `read_chain_state`."""

    concepts: int
    photos: int
    photos_to_segment: int  # photos without a current mask
    pixels_to_segment: int  # their pixels (for the disk estimate)
    layouts: tuple[int, ...]  # ids of the layouts with objects, present now
    planned_layouts: tuple[int, ...]  # ids the chain planned (present or deleted)
    dataset_indices: frozenset[int]  # build indices of the dataset items present
    run: RunState | None  # the chain's training run
    pictures_by_batch: dict[str, int]  # the chain run's picture batches -> pictures made
    pictures: tuple[int, ...]  # the chain run's pictures (generation ids, trashed ones too)
    unscored: tuple[int, ...]  # the chain run's live pictures without scores
    missing_models: tuple[str, ...] = ()  # roles that would need a download
    free_disk_bytes: int | None = None
    # For a real profile, what test models made is made again: current masks among
    # photos_to_segment, numbered dataset items left out of dataset_indices.
    test_masks: int = 0
    test_items: int = 0

    @property
    def deleted_layouts(self) -> int:
        return len(set(self.planned_layouts) - set(self.layouts))

    @property
    def chain_layouts(self) -> tuple[int, ...]:
        """The layouts pictures are generated from: the chain's planned ones still there,
        or every layout when the chain planned none (the user made enough of their own)."""
        own = tuple(i for i in self.layouts if i in set(self.planned_layouts))
        return own or self.layouts


def _run_state(project: Project, book: ChainBook, profile: Profile | None) -> RunState | None:
    from engine.models.profiles import made_with_test_models, remade_for
    from engine.train import RunPaths, latest_checkpoint

    if book.run_id is None:
        return None
    try:
        run = project.run(book.run_id)
    except InputError:  # deleted by the user: the chain trains a new one
        return None
    if run.kind != TRAINING_KIND:
        return None
    steps = int((run.config.get("train") or {}).get("steps") or 0)
    if run.status == "finished":
        done = steps
    else:
        # The checkpoint training would resume from (a torn one does not count).
        latest = latest_checkpoint(RunPaths.of(project, book.run_id).checkpoints)
        done = latest.step if latest else 0
    noise = profile is not None and remade_for(profile, made_with_test_models(run.config))
    return RunState(book.run_id, run.status, steps, min(done, steps), book.run_key, noise)


def read_chain_state(project: Project, profile: Profile | None = None,
                     overrides: dict[str, str] | None = None, *,
                     check_models: bool = True) -> ChainState:
    """What is done in `project` (read only: nothing is written), for `profile`: on a real
    one, what test models made counts as not done. With `check_models`, the roles the
    profile lacks are named too."""
    from engine.atomic import free_bytes
    from engine.models.profiles import made_with_test_models, remade_for

    def noise(made_by_test_models: bool) -> bool:
        return profile is not None and remade_for(profile, made_by_test_models)

    book = ChainBook.read(project).settle(project)
    concepts = project.concepts()
    todo_pixels, todo, test_masks = 0, 0, 0
    photos = 0
    for concept in concepts:
        masked = project.current_masks(concept.id)
        for photo in project.photos(concept.id):
            photos += 1
            remade = photo.id in masked and noise(masked[photo.id].test_model)
            test_masks += remade
            if photo.id not in masked or remade:
                todo += 1
                todo_pixels += photo.width * photo.height
    layouts = tuple(int(lay.id or 0) for lay in project.layouts() if lay.objects)
    numbered = [i for i in project.dataset_items() if i.build_index is not None]
    test_items = [i for i in numbered if noise(made_with_test_models(i.provenance))]
    indices = frozenset(int(i.build_index or 0) for i in numbered if i not in test_items)
    run = _run_state(project, book, profile)
    batches: dict[str, int] = {}
    ids: list[int] = []
    unscored: tuple[int, ...] = ()
    if run is not None:
        for gen in project.generations(run.run_id):
            batch = str(gen.settings.get("batch") or "")
            if batch.startswith(batch_prefix(run.run_id)):
                batches[batch] = batches.get(batch, 0) + 1
                ids.append(int(gen.id or 0))
        if ids:
            unscored = tuple(int(g.id or 0) for g in project.generations_to_score(
                run.run_id, ids))
    missing: tuple[str, ...] = ()
    if profile is not None and check_models:
        from engine.models.profiles import missing_roles
        from engine.personalize.jobs import chain_roles

        missing = missing_roles(profile, chain_roles(), dict(overrides or {}))
    free = free_bytes(project.root)
    return ChainState(
        concepts=len(concepts), photos=photos, photos_to_segment=todo,
        pixels_to_segment=todo_pixels, layouts=layouts,
        planned_layouts=tuple(book.planned_layouts), dataset_indices=indices, run=run,
        pictures_by_batch=batches, pictures=tuple(ids), unscored=unscored,
        missing_models=missing, free_disk_bytes=free, test_masks=test_masks,
        test_items=len(test_items))
