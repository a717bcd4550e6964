"""User settings: typed, versioned, validated key by key.

A settings file that cannot be read is backed up beside itself and the defaults are used, with
a log line; a single bad key falls back to its default and the rest are kept.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.atomic import atomic_write_text
from engine.device import DEVICES, PRECISIONS
from engine.paths import config_dir

log = logging.getLogger(__name__)
SETTINGS_VERSION = 1
MAX_RECENT = 10


@dataclass
class Settings:
    version: int = SETTINGS_VERSION
    profile: str = ""  # empty: the profile table's default
    device: str = "auto"
    # "auto": bf16 compute on CPUs with bf16 units, half precision on GPUs; "float32": full
    # precision everywhere (slower: to check results, or where half precision misbehaves).
    precision: str = "auto"
    model_folder: str = ""  # extra folder searched for models (empty: the app's data folder)
    planner_gguf: str = ""  # a GGUF file for the planner (empty: the embedded model)
    # llama-cpp chat format for an instruction-tuned planner GGUF ("chatml", "llama-3", ... or
    # "chat_template.default" for the file's own template); empty: few-shot completion.
    planner_chat_format: str = ""
    role_overrides: dict[str, str] = field(default_factory=dict)
    recent_projects: list[str] = field(default_factory=list)

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path).resolve())
        self.recent_projects = [p] + [r for r in self.recent_projects if r != p]
        del self.recent_projects[MAX_RECENT:]


def settings_path() -> Path:
    return config_dir() / "settings.json"


def _valid(name: str, value: Any) -> bool:
    if name == "version":
        return isinstance(value, int) and 1 <= value <= SETTINGS_VERSION
    if name == "device":
        return isinstance(value, str) and (value in DEVICES or value.startswith("cuda:"))
    if name == "precision":
        return value in PRECISIONS
    if name == "profile":
        if not isinstance(value, str):
            return False
        if not value:
            return True
        from engine.models.profiles import profile_names

        return value in profile_names()
    if name in {"model_folder", "planner_gguf", "planner_chat_format"}:
        return isinstance(value, str)
    if name == "role_overrides":
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
    if name == "recent_projects":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return False


def _backup(path: Path, why: str) -> Path:
    backup = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
    path.replace(backup)
    log.warning("Settings file %s %s; moved it to %s and used the defaults", path, why, backup)
    return backup


def load_settings(path: Path | None = None) -> Settings:
    path = path or settings_path()
    if not path.exists():
        return Settings()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("top level is not an object")
    except (OSError, ValueError) as exc:
        _backup(path, f"could not be read ({exc})")
        return Settings()
    settings = Settings()
    for f in fields(Settings):
        if f.name not in raw:
            continue
        if _valid(f.name, raw[f.name]):
            setattr(settings, f.name, raw[f.name])
        else:
            log.warning("Settings: ignored invalid %s=%r; using the default", f.name, raw[f.name])
    settings.version = SETTINGS_VERSION
    return settings


def save_settings(settings: Settings, path: Path | None = None) -> None:
    for f in fields(Settings):
        if not _valid(f.name, getattr(settings, f.name)):
            from engine.errors import InputError

            value = getattr(settings, f.name)
            raise InputError(f"Setting {f.name!r} has an invalid value: {value!r}")
    atomic_write_text(path or settings_path(), json.dumps(asdict(settings), indent=2) + "\n")
