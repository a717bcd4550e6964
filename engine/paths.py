"""Where things live, and how user-typed names become safe path components."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from engine.errors import InputError

APP_NAME = "mycanvas-studio"
# The package the wheel installs the top-level resources/ folder as (pyproject.toml).
RESOURCES_PACKAGE = "mycanvas_resources"


def find_resources(code_root: Path | None = None) -> Path:
    """The folder of the app's read-only files that belong to *this* copy of the code.

    Installed (a wheel): the package `mycanvas_resources` beside `engine` in site-packages.
    Run from the source tree (tests, development): the tree's own resources/ folder, so the
    code and the files it reads always come from the same place. Otherwise whatever
    `mycanvas_resources` importlib finds (another installer's layout)."""
    root = code_root or Path(__file__).resolve().parent.parent
    installed = root / RESOURCES_PACKAGE
    if (installed / "profiles.json").is_file():
        return installed
    source_tree = root / "resources"
    if (root / "pyproject.toml").is_file() and (source_tree / "profiles.json").is_file():
        return source_tree
    from importlib.resources import files

    try:
        found = Path(str(files(RESOURCES_PACKAGE)))
    except ModuleNotFoundError:
        found = installed
    if not (found / "profiles.json").is_file():
        raise RuntimeError(f"MyCanvas Studio is installed without its resources: no "
                           f"{RESOURCES_PACKAGE}/profiles.json beside {root / 'engine'}; "
                           "reinstall the package")
    return found


RESOURCES = find_resources()


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


def openvino_dir() -> Path:
    """OpenVINO conversions of the profiles' models, one folder per profile."""
    return data_dir() / "openvino"


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
