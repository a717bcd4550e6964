"""Checkpoints that a kill cannot tear, and resuming from the last complete one.

A checkpoint is a folder `checkpoints/step-0000100/` holding

    trainable.safetensors   the trained tensors (k/v weights, learned token rows)
    optimizer.pt            the optimiser's state (our own file: read back weights-only)
    state.json              step, config, dataset snapshot, gradient-scaler state, and how
                            the randomness continues (derived from seed and step; no state)

It is written under a temp name (`.step-0000100.tmp-<pid>-<hex>`), every file fsynced, then
renamed into place: only a renamed folder counts. Older checkpoints are pruned after the
rename, so at least one complete checkpoint exists at every instant once the first is done.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.atomic import (
    TEMP_MARK,
    disk_full_error,
    ensure_free_space,
    fsync_dir,
    looks_like_disk_full,
    pid_alive,
)
from engine.errors import reading

WEIGHTS_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "state.json"
_NAME = re.compile(r"^step-(\d{7,})$")


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def remove_stale_temp_folders(folder: Path) -> int:
    """Delete half-written checkpoint folders whose writer is gone (killed mid-write)."""
    removed = 0
    if not folder.is_dir():
        return 0
    for entry in folder.iterdir():
        if not (entry.is_dir() and entry.name.startswith(".") and TEMP_MARK in entry.name):
            continue
        try:
            pid = int(entry.name.rsplit(TEMP_MARK, 1)[1].split("-", 1)[0])
        except (IndexError, ValueError):
            pid = -1
        if pid < 0 or not pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def list_checkpoints(folder: Path) -> list[Checkpoint]:
    """Complete checkpoints, oldest first."""
    found = []
    if folder.is_dir():
        for entry in folder.iterdir():
            match = _NAME.match(entry.name)
            if match and entry.is_dir() and (entry / STATE_FILE).is_file():
                found.append(Checkpoint(int(match.group(1)), entry))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(folder: Path) -> Checkpoint | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def _bytes_of(value: Any) -> int:
    """What the tensors in a (nested) state take on disk, about."""
    if hasattr(value, "element_size") and hasattr(value, "nelement"):
        return int(value.element_size() * value.nelement())
    if isinstance(value, dict):
        return sum(_bytes_of(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_bytes_of(v) for v in value)
    return 64


def kept_checkpoint(folder: Path) -> str:
    """What a failed write leaves to resume from, for the message."""
    last = latest_checkpoint(folder)
    if last is None:
        return "no checkpoint of this run was written yet, so it would start from step 0"
    return f"the checkpoint at step {last.step} ({last.path.name}) was kept"


def save_checkpoint(folder: Path, step: int, trainable: dict[str, Any],
                    optimizer_state: dict[str, Any], state: dict[str, Any],
                    keep: int) -> Checkpoint:
    """Write checkpoint `step` atomically, then prune all but the newest `keep`. A full disk
    (checked before writing, and recognised while writing) is a DiskFullError that names the
    checkpoint, the space it needs and the checkpoint that was kept."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / checkpoint_name(step)
    if (final / STATE_FILE).is_file():
        return Checkpoint(step, final)  # this step is already saved (e.g. cancel right after)
    needed = _bytes_of(trainable) + _bytes_of(optimizer_state) + (1 << 20)
    then = "resume the run (mycanvas train PROJECT --resume)"
    ensure_free_space(final, needed, kept_checkpoint(folder), then)
    temp = folder / f".{final.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
    temp.mkdir()
    try:
        save_file({k: v.contiguous() for k, v in trainable.items()}, str(temp / WEIGHTS_FILE),
                  metadata={"format": "pt", "step": str(step)})
        torch.save(optimizer_state, temp / OPTIMIZER_FILE)
        (temp / STATE_FILE).write_text(json.dumps({**state, "step": step}, indent=1),
                                       encoding="utf-8")
        for name in (WEIGHTS_FILE, OPTIMIZER_FILE, STATE_FILE):
            _fsync_file(temp / name)
        fsync_dir(temp)
        if final.exists():  # a folder without state.json: an incomplete leftover
            shutil.rmtree(final)
        os.replace(temp, final)
        fsync_dir(folder)
    except BaseException as exc:
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(exc, Exception) and looks_like_disk_full(exc, folder, needed):
            raise disk_full_error(final, needed, kept_checkpoint(folder), then) from exc
        raise
    prune_checkpoints(folder, keep)
    return Checkpoint(step, final)


def prune_checkpoints(folder: Path, keep: int) -> None:
    for old in list_checkpoints(folder)[:-keep]:
        # Renamed away first, so a kill mid-delete never leaves a half checkpoint that
        # still looks complete.
        doomed = old.path.with_name(f".{old.path.name}{TEMP_MARK}{os.getpid()}-del")
        with contextlib.suppress(OSError):
            os.replace(old.path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)


def load_checkpoint(checkpoint: Checkpoint) -> tuple[dict[str, Any], dict[str, Any],
                                                     dict[str, Any]]:
    """(trainable tensors, optimiser state, state.json) of a complete checkpoint. A file that
    cannot be read is an InputError naming it and the checkpoint to fall back on."""
    import torch
    from safetensors.torch import load_file

    where = checkpoint.path
    earlier = [c for c in list_checkpoints(where.parent) if c.step < checkpoint.step]
    remedy = (f"Delete the folder {where} to resume from the checkpoint at step "
              f"{earlier[-1].step}" if earlier else
              f"Delete the folder {where} to start the run again from step 0")
    with reading(where / WEIGHTS_FILE, "a safetensors file", remedy):
        trainable = load_file(str(where / WEIGHTS_FILE))
    with reading(where / OPTIMIZER_FILE, "a checkpoint of the optimiser", remedy):
        # Our own file; weights_only keeps the unpickler to tensors and plain containers.
        optimizer_state = torch.load(where / OPTIMIZER_FILE, weights_only=True,
                                     map_location="cpu")
    with reading(where / STATE_FILE, "a JSON file", remedy):
        state = json.loads((where / STATE_FILE).read_text(encoding="utf-8"))
        if not isinstance(state, dict):
            raise ValueError("not a JSON object")
    return trainable, optimizer_state, state
