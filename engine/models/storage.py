"""Where the app keeps data on this computer, how big each place is, and freeing a profile's
downloads without touching a file another profile needs.

A profile's downloads sit in the Hugging Face cache (`models--ORG--NAME/`: `blobs/<sha256>`
holds the bytes, `snapshots/<commit>/<file>` links to a blob), shared with the user's other
tools; a blob may also be a hard link to another repository's blob with the same hash (the
files two roles share are stored once: engine.models.hub). What the app builds or converts
lives in its data folder (engine.paths).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.models.profiles import Profile, RoleSpec, get_profile, profile_names
from engine.paths import config_dir, data_dir, models_dir, openvino_dir, safe_component


@dataclass(frozen=True)
class Place:
    kind: str  # "models", "app data", "settings", "recent project", ...
    label: str
    path: Path
    size: int  # bytes on disk, each file counted once (hard links too); 0 when absent

    @property
    def exists(self) -> bool:
        return self.path.exists()


def tree_size(path: Path, seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes of the regular files under `path` (or of the file), symbolic links not followed,
    a file with several hard links counted once (across calls sharing `seen`)."""
    seen = set() if seen is None else seen
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            st = current.lstat()
        except OSError:
            continue
        if current.is_symlink():
            continue
        if current.is_dir():
            try:
                stack.extend(current.iterdir())
            except OSError:
                continue
        elif (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def hf_cache_root() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def repo_folder(repo: str) -> Path:
    return hf_cache_root() / ("models--" + repo.replace("/", "--"))


def _downloaded_roles() -> dict[str, list[tuple[str, str]]]:
    """Repository -> [(profile, role)] of every role that downloads from it."""
    repos: dict[str, list[tuple[str, str]]] = {}
    for name in profile_names():
        for role, spec in get_profile(name).roles.items():
            if spec.repo:
                repos.setdefault(spec.repo, []).append((name, role))
    return repos


def storage_places(recent_projects: Iterable[str] = ()) -> list[Place]:
    """Every place the app stores data, with its size: the profiles' downloads, the app's
    data folder (built test models, the planner model, OpenVINO conversions, the sample
    project, the rest), the settings, and the recent projects."""
    seen: set[tuple[int, int]] = set()
    places = []
    for repo, users in _downloaded_roles().items():
        folder = repo_folder(repo)
        who = ", ".join(f"{p} {r}" for p, r in users)
        places.append(Place("models", f"{repo} ({who})", folder, tree_size(folder, seen)))
    hf_rest = tree_size(hf_cache_root(), seen)
    places.append(Place("models", "the rest of the Hugging Face cache (other tools' models)",
                        hf_cache_root(), hf_rest))
    data = data_dir()
    named = {models_dir() / "tiny": "tiny test models (built here; rebuilt when needed)",
             models_dir() / "planner": "the planner's GGUF (assembled from its package)",
             openvino_dir(): "OpenVINO conversions (mycanvas prepare-openvino)",
             data / "projects": "the sample project"}
    for path, label in named.items():
        places.append(Place("app data", label, path, tree_size(path, seen)))
    places.append(Place("app data", "the rest of the app's data folder", data,
                        tree_size(data, seen)))
    config = config_dir()
    places.append(Place("settings", "settings and recent projects", config,
                        tree_size(config, seen)))
    for project in recent_projects:
        places.append(Place("recent project", Path(project).name, Path(project),
                            tree_size(Path(project), seen)))
    return places


# --------------------------------------------------------------------------- removing


@dataclass(frozen=True)
class Removal:
    """What freeing a profile's downloads deletes, and what it keeps because another
    profile needs it."""

    profile: str
    paths: tuple[Path, ...]
    size: int
    kept: tuple[str, ...]  # one line per thing kept, with the reason


def _snapshot_files(folder: Path) -> list[Path]:
    snapshots = folder / "snapshots"
    return [p for p in snapshots.rglob("*") if p.is_symlink() or p.is_file()] \
        if snapshots.is_dir() else []


def _blob_of(pointer: Path) -> Path | None:
    if not pointer.is_symlink():
        return None
    target = (pointer.parent / os.readlink(pointer)).resolve()
    return target if target.is_file() else None


def _wanted_by(spec: RoleSpec, pointer: Path, folder: Path, any_variant: bool = False) -> bool:
    rel = "/".join(pointer.relative_to(folder / "snapshots").parts[1:])  # without the commit
    return spec.wants_any_variant(rel) if any_variant else spec.wants(rel)


def plan_removal(name: str) -> Removal:
    """The files `mycanvas models remove NAME` deletes; none that another profile's role
    wants (same repository, a file its patterns match). Deletes nothing."""
    profile: Profile = get_profile(name)
    others = [(o, role, spec) for o in profile_names() if o != name
              for role, spec in get_profile(o).roles.items()]
    paths: list[Path] = []
    kept: list[str] = []
    seen: set[tuple[int, int]] = set()
    size = 0
    for spec in profile.roles.values():
        if spec.tiny:
            folder = models_dir() / "tiny" / spec.tiny
            if folder.exists():
                paths.append(folder)
                size += tree_size(folder, seen)
            continue
        if not spec.repo:
            if spec.package and any(s.package == spec.package for _, _, s in others):
                kept.append(f"{spec.role}: {spec.source}, also used by another profile")
            continue
        folder = repo_folder(spec.repo)
        sharing = [(o, role, s) for o, role, s in others if s.repo == spec.repo]
        pointers = _snapshot_files(folder)
        # the role's files of any variant: an older version's full-precision download too
        ours = [p for p in pointers if _wanted_by(spec, p, folder, any_variant=True)]
        needed_blobs = {_blob_of(p) for p in pointers if p not in ours}
        needed_blobs |= {_blob_of(p) for p in ours
                         if any(_wanted_by(s, p, folder) for _, _, s in sharing)}
        for pointer in ours:
            if any(_wanted_by(s, pointer, folder) for _, _, s in sharing):
                who = next(f"{o} {role}" for o, role, s in sharing
                           if _wanted_by(s, pointer, folder))
                kept.append(f"{pointer.name} of {spec.repo}: {who} needs it")
                continue
            paths.append(pointer)
            blob = _blob_of(pointer)
            if blob is not None and blob not in needed_blobs and blob not in paths:
                paths.append(blob)
                size += tree_size(blob, seen)
    conversions = openvino_dir() / safe_component(name, fallback="profile")
    if conversions.exists():
        paths.append(conversions)
        size += tree_size(conversions, seen)
    return Removal(name, tuple(paths), size, tuple(kept))


def remove(plan: Removal) -> None:
    """Delete what `plan_removal` listed, then the repository folders left with no file."""
    folders = set()
    for path in plan.paths:
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
        elif path.is_dir():
            shutil.rmtree(path)
        for parent in path.parents:
            if parent.name.startswith("models--"):
                folders.add(parent)
                break
    for folder in folders:
        if not _snapshot_files(folder):
            shutil.rmtree(folder, ignore_errors=True)
            continue
        for sub in sorted((folder / "snapshots").rglob("*"), key=lambda p: len(p.parts),
                          reverse=True):
            if sub.is_dir() and not sub.is_symlink() and not any(sub.iterdir()):
                sub.rmdir()
