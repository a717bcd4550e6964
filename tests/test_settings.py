"""Settings: validated key by key; a bad file is backed up, never fatal."""

from __future__ import annotations

import json
import logging

import pytest

from engine.errors import InputError
from engine.settings import Settings, load_settings, save_settings, settings_path


def test_round_trip_and_recent_projects(tmp_path):
    s = Settings(profile="tiny", device="cpu", role_overrides={"base": "/models/sd"})
    for i in range(15):
        s.add_recent(tmp_path / f"p{i}")
    s.add_recent(tmp_path / "p3")
    save_settings(s)
    loaded = load_settings()
    assert loaded == s
    assert loaded.recent_projects[0].endswith("p3") and len(loaded.recent_projects) == 10


def test_unreadable_file_is_backed_up_and_defaults_used(caplog):
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        loaded = load_settings()
    assert loaded == Settings()
    backups = list(path.parent.glob("settings.json.bad-*"))
    assert len(backups) == 1 and backups[0].read_text() == "{not json"
    assert not path.exists()
    assert "could not be read" in caplog.text


def test_invalid_keys_fall_back_one_by_one(caplog):
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"profile": "no-such-profile", "device": "cpu",
                                "recent_projects": "oops", "unknown": 1}))
    with caplog.at_level(logging.WARNING):
        loaded = load_settings()
    assert loaded.device == "cpu"
    assert loaded.profile == "" and loaded.recent_projects == []
    assert "profile" in caplog.text and "recent_projects" in caplog.text


def test_saving_an_invalid_value_is_refused_and_file_kept():
    save_settings(Settings(device="cpu"))
    before = settings_path().read_bytes()
    with pytest.raises(InputError, match="device"):
        save_settings(Settings(device="quantum"))
    assert settings_path().read_bytes() == before
