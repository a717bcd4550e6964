"""Where things live, and how user-typed names become safe path components."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from engine.errors import InputError

APP_NAME = "mycanvas-studio"
RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def data_dir() -> Path:
    """The app's data folder (models we build or assemble, settings); MYCANVAS_DATA_DIR wins."""
    env = os.environ.get("MYCANVAS_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    env = os.environ.get("MYCANVAS_CONFIG_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    return data_dir() / "models"


_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {
    f"lpt{i}" for i in range(10)
}


def safe_component(name: str, *, fallback: str = "item", max_len: int = 64) -> str:
    """A single path component derived from a user-typed name; never '..', never a separator."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-_").lower()[:max_len].strip(".-_")
    if not text or text.split(".", 1)[0] in _WINDOWS_RESERVED:
        text = fallback
    return text


def resolve_inside(root: Path, *parts: str, root_resolved: bool = False) -> Path:
    """Join `parts` under `root` and refuse any result that escapes `root` (symbolic links
    followed). `root_resolved`: the caller has resolved `root` already."""
    base = root if root_resolved else root.resolve()
    candidate = base.joinpath(*parts).resolve()
    if candidate != base and base not in candidate.parents:
        raise InputError(f"Path {'/'.join(parts)!r} points outside {base}")
    return candidate
