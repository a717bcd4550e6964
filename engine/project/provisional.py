"""Work that counts only if its job succeeds: what a block adds to the project (concepts,
photos, masks, runs, new files) is taken out again when the block fails, so a job that fails
leaves the project as it was.

    with project.provisional(keep_if=lambda: checkpoint_saved()) as added:
        ...  # add concepts, photos, a run; train

A cancel (Cancelled) keeps what was added: a cancelled run stays resumable. So does a failure
once `keep_if()` says the work is worth resuming (a run with a checkpoint), or after
`added.keep()`. Mixed into Project, which calls `_note_added` from its add_* methods.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import Cancelled

# Undone in this order: a run before the masks it made, masks before photos, photos before
# their concepts (deleting a concept also takes its photos and masks, ON DELETE CASCADE).
_TABLES = ("runs", "masks", "photos", "concepts")

_log = logging.getLogger(__name__)


@dataclass
class Added:
    """What one provisional block added, by table; files by their project-relative path."""

    rows: dict[str, list[int]] = field(default_factory=lambda: {t: [] for t in _TABLES})
    files: list[str] = field(default_factory=list)
    kept: bool = False

    def keep(self) -> None:
        """The work is worth keeping even if the block fails from here on."""
        self.kept = True


class ProvisionalRecords:
    """Needs Project's plumbing (`_tx`, `root`, `abspath`)."""

    if TYPE_CHECKING:
        root: Path

        def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]: ...

        def abspath(self, rel: str) -> Path: ...

    _scopes: threading.local

    def _open_scopes(self) -> list[Added]:
        scopes = getattr(self, "_scopes", None)
        if scopes is None:
            scopes = self._scopes = threading.local()
        if not hasattr(scopes, "stack"):
            scopes.stack = []
        return list(scopes.stack)

    def _note_added(self, table: str, row_id: int | None) -> None:
        if table in _TABLES and row_id is not None:
            for added in self._open_scopes():
                added.rows[table].append(int(row_id))

    def _note_file(self, rel: str) -> None:
        for added in self._open_scopes():
            added.files.append(rel)

    @contextlib.contextmanager
    def provisional(self, keep_if: Callable[[], bool] | None = None) -> Iterator[Added]:
        """Undo what the block adds (this thread, this project) if it raises anything but
        Cancelled, unless it was kept (see the module doc). The error goes on."""
        self._open_scopes()
        added = Added()
        self._scopes.stack.append(added)
        try:
            yield added
        except Cancelled:
            raise
        except BaseException:
            if not added.kept and not (keep_if is not None and _safely(keep_if)):
                self._undo(added)
            raise
        finally:
            self._scopes.stack.remove(added)

    def _undo(self, added: Added) -> None:
        try:
            with self._tx() as conn:
                for table in _TABLES:  # literal names, never the caller's
                    for row_id in reversed(added.rows[table]):
                        conn.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))
        except Exception:  # the job's own error is the one to report
            _log.exception("could not take back what a failed job added to %s", self.root)
            return
        for run_id in added.rows["runs"]:
            shutil.rmtree(self.root / "runs" / str(run_id), ignore_errors=True)
        for rel in added.files:
            with contextlib.suppress(OSError):
                self.abspath(rel).unlink(missing_ok=True)


def _safely(check: Callable[[], Any]) -> bool:
    try:
        return bool(check())
    except Exception:
        return True  # unsure: keep the work rather than lose it
