"""Changes to the open project that this window did not make: the CLI on the same project, or a
worker job the window did not start, committed to the catalogue.

SQLite's `PRAGMA data_version` (Project.data_version) changes whenever another connection
commits; a QTimer polls it a few times a second (microseconds a poll). When it moved, a
fingerprint of each part of the project is read and compared with the last one, and the parts
that differ are touched in the AppState, so every view showing them reloads. The window's own
writes are announced by the views that make them; a job's (its declared changes, when it sends
a preview or ends: JobsBridge.data_changed) come through `announce`, so that the window hears
of one commit once: whichever of the job's event and the next poll comes first announces it,
the other finds it announced.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer

from desktop_app.state.observable import AppState, Bindings
from engine.errors import MyCanvasError

POLL_MS = 250


def fingerprints(project: Any) -> dict[str, Any]:
    """What each part of the project holds, compared with == from one poll to the next.

    Rows that are only ever added or deleted (photos, masks) count by their number; rows
    changed in place (concepts renamed, layouts edited, items reviewed, runs finishing,
    pictures marked, trashed or rescored) are compared whole or by what shows of them. Read
    only after data_version moved."""
    counts = project.summary()
    return {
        "concepts": project.concepts(),
        "photos": (counts.get("photos"), counts.get("masks")),
        "layouts": project.layouts(),
        "dataset": project.dataset_items(),
        "runs": project.runs(),
        "generations": project.gallery_state(),
    }


class ProjectWatcher(QObject):
    """Polls the open project's data_version; touches the parts another process changed."""

    def __init__(self, state: AppState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.timer = QTimer(self)
        self.timer.setObjectName("projectWatch")
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self._version: int | None = None
        self._seen: dict[str, Any] = {}
        self._announced: set[str] = set()  # the parts touched for the commit at _version
        self.bindings = Bindings()
        self.bindings.bind(state, "project", self._project_changed)

    def _project_changed(self, project: Any) -> None:
        self._version = None
        self._seen = {}
        self._announced = set()
        if project is None:
            self.timer.stop()
            return
        try:
            self._version = project.data_version()
            self._seen = fingerprints(project)
        except MyCanvasError:
            self._version = None
        self.timer.start()

    def poll(self) -> None:
        """One look: cheap unless another connection committed since the last one."""
        project = self.state.project
        if project is None or project.closed:
            return
        try:
            version = project.data_version()
            if version == self._version:
                return
            now = fingerprints(project)
        except MyCanvasError:
            return  # closed or busy for a moment: the next poll looks again
        self._version = version
        changed = [part for part, value in now.items() if self._seen.get(part) != value]
        self._seen = now
        self._announced = set(changed)
        if changed:
            self.state.touch(*changed)

    def announce(self, parts: tuple[str, ...]) -> None:
        """A job of this window changed `parts` (a preview or its end): touch them, unless
        the commit they come with was announced already (by the last poll, or the job's
        previous event); other parts a commit since the last look changed are touched too."""
        project = self.state.project
        try:
            version = None if project is None or project.closed else project.data_version()
            moved = version is not None and version != self._version
            now = fingerprints(project) if moved else {}
        except MyCanvasError:
            version, moved, now = None, False, {}
        if moved:
            changed = {part for part, value in now.items() if self._seen.get(part) != value}
            self._version, self._seen, self._announced = version, now, set()
            parts = tuple(dict.fromkeys((*parts, *sorted(changed))))
        fresh = [part for part in parts if part not in self._announced]
        self._announced.update(fresh)
        if fresh:
            self.state.touch(*fresh)

    def stop(self) -> None:
        self.timer.stop()
        self.bindings.clear()
