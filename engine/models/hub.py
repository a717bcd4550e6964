"""Downloads through huggingface_hub: byte progress, resume, checksum, clear offline errors.

Files land in the Hugging Face cache, shared with the user's other tools. A download that is
cancelled or cut off keeps its partial blob, and the next attempt resumes it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.atomic import file_sha256
from engine.errors import Cancelled, ModelMissingError
from engine.models.profiles import Profile, RoleSpec, missing_fields, missing_message

# progress(bytes_done, bytes_total, message)
ByteProgress = Callable[[int, int, str], None]


def _offline_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "OfflineModeIsEnabled":
        return "offline mode is on (HF_HUB_OFFLINE)"
    if name in {"GatedRepoError"}:
        return "the model is gated: accept its licence on huggingface.co and log in"
    if name in {"RepositoryNotFoundError", "RevisionNotFoundError", "RemoteEntryNotFoundError"}:
        return f"the Hub does not have it ({name})"
    return "no connection to the Hugging Face Hub"


def _progress_bar_class(report: Callable[[int], None]) -> type:
    """A tqdm subclass that forwards byte counts; huggingface_hub drives it per file."""
    from tqdm.auto import tqdm

    class _Bar(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True  # we draw our own progress
            super().__init__(*args, **kwargs)
            self._seen = 0

        def update(self, n: float | None = 1) -> bool | None:
            self._seen += int(n or 0)
            report(int(n or 0))  # may raise Cancelled: the partial blob stays for resume
            return super().update(n)

    return _Bar


def plan_files(spec: RoleSpec) -> list[tuple[str, int, str | None]]:
    """(filename, size, sha256 or None) for every file of the role, from the Hub's metadata."""
    from huggingface_hub import HfApi

    if not spec.repo:
        raise ModelMissingError(f"The {spec.role!r} model has no download source")
    info = HfApi().model_info(spec.repo, revision=spec.revision, files_metadata=True)
    files = []
    for s in info.siblings or []:
        if spec.wants(s.rfilename):
            sha = s.lfs.sha256 if s.lfs is not None else None
            files.append((s.rfilename, int(s.size or 0), sha))
    return files


def link_known_blob(repo: str, sha256: str) -> Path | None:
    """A file another repository of the cache already holds byte for byte (same sha256, the
    name the Hub's cache gives an LFS blob) becomes this repository's blob as a hard link:
    stored once, and the download that follows finds it cached. None when there is none
    (or the file system cannot link)."""
    from engine.models.storage import hf_cache_root, repo_folder

    target = repo_folder(repo) / "blobs" / sha256
    if target.exists():
        return target
    for other in sorted(hf_cache_root().glob("models--*/blobs/" + sha256)):
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(other, target)
        except OSError:
            return None
        return target
    return None


def download_role(
    profile: Profile, role: str, progress: ByteProgress | None = None
) -> Path:
    """Download one role of a profile into the Hugging Face cache and verify it."""
    from huggingface_hub import hf_hub_download

    spec = profile.role(role)
    if not spec.repo:
        raise ModelMissingError(f"The {role!r} model of profile {profile.name!r} is not downloaded")
    try:
        files = plan_files(spec)
        missing = [f for f in spec.required if f not in {name for name, _, _ in files}]
        if missing:
            raise ModelMissingError(
                f"{spec.repo} does not contain {missing[0]}; the profile table needs fixing"
            )
        total = sum(size for _, size, _ in files) or 1
        done = 0

        def report(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(min(done, total), total, f"{role}: {current}")

        bar = _progress_bar_class(report)
        folder: Path | None = None
        for current, size, sha in files:
            before = done
            if sha:
                link_known_blob(spec.repo, sha)
            path = Path(hf_hub_download(
                spec.repo, current, revision=spec.revision, tqdm_class=bar,
            ))
            done = before + size  # a cached or resumed file counts in full
            if progress:
                progress(min(done, total), total, f"{role}: {current}")
            if sha and file_sha256(path) != sha:
                path.unlink(missing_ok=True)
                raise ModelMissingError(
                    f"{current} from {spec.repo} failed its checksum and was removed; try again"
                )
            folder = path.parents[len(Path(current).parts) - 1]
    except (Cancelled, ModelMissingError):
        raise
    except Exception as exc:
        why = _offline_reason(exc)
        raise ModelMissingError(missing_message(profile, spec, why),
                                **missing_fields(profile, spec, why)) from exc
    assert folder is not None
    return folder / spec.file if spec.file else folder
