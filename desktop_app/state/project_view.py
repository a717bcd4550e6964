"""What the window showed of a project, kept in the project itself (its catalogue's meta
table), so reopening it comes back to the same step and the same Personalize preset, and
another project keeps its own."""

from __future__ import annotations

import json
import logging
from typing import Any

from engine.errors import MyCanvasError

META_KEY = "window_view"
_log = logging.getLogger(__name__)


def read_view(project: Any) -> dict[str, str]:
    """{"step": ..., "preset": ...} as last shown; {} when never saved or unreadable."""
    try:
        raw = project.meta(META_KEY)
        view = json.loads(raw) if raw else {}
    except (MyCanvasError, ValueError):
        return {}
    if not isinstance(view, dict):
        return {}
    return {k: v for k, v in view.items() if k in ("step", "preset") and isinstance(v, str)}


def remember_view(project: Any, **view: str) -> None:
    """Keep what is shown now (unchanged fields stay). Best effort: a project that cannot be
    written (read-only, full disk) only forgets where the window was."""
    if project is None or project.closed:
        return
    now = {**read_view(project), **view}
    try:
        if project.meta(META_KEY) != json.dumps(now, sort_keys=True):
            project.set_meta(META_KEY, json.dumps(now, sort_keys=True))
    except (MyCanvasError, OSError) as exc:
        _log.warning("could not remember the window's view of the project: %s", exc)
