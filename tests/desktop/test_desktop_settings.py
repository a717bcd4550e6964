"""Settings are checked field by field and saved through the engine; the model manager shows
which roles are present, says when the test models are in use, and runs the model job with
progress and cancel. Also the observable-state pattern the views are built on."""

from __future__ import annotations

from PySide6.QtCore import Qt

from desktop_app.pages.settings_dialog import SettingsDialog
from desktop_app.state.observable import Bindings, Evented, Field, bind
from engine.jobs.registry import target_overrides
from engine.settings import Settings, load_settings

from qt_helpers import wait_for_jobs  # isort: skip


def test_settings_dialog_validates_and_saves(make_window, qtbot, tmp_path):
    window = make_window()
    window.open_settings()
    dialog: SettingsDialog = window.settings_dialog
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    assert dialog.device.currentText() == "cpu" and "TEST MODELS" in dialog.profile_note.text()
    dialog.device.setCurrentText("gpu9")
    assert not ok.isEnabled() and "Device must be" in dialog.problem.text()
    dialog.device.setCurrentText("cuda:1")
    dialog.planner.setText(str(tmp_path / "missing.gguf"))
    assert not ok.isEnabled() and "No planner model file" in dialog.problem.text()
    not_gguf = tmp_path / "model.bin"
    not_gguf.write_bytes(b"x")
    dialog.planner.setText(str(not_gguf))
    assert "must be a .gguf" in dialog.problem.text()
    gguf = tmp_path / "planner.gguf"
    gguf.write_bytes(b"GGUF")
    dialog.planner.setText(str(gguf))
    dialog.model_folder.setText(str(tmp_path / "nowhere"))
    assert not ok.isEnabled() and "No folder" in dialog.problem.text()
    dialog.model_folder.setText(str(tmp_path))
    dialog.profile.setCurrentIndex(dialog.profile.findData("sd15"))
    assert ok.isEnabled() and dialog.problem.text() == ""
    qtbot.mouseClick(ok, Qt.MouseButton.LeftButton)
    saved = load_settings()
    assert (saved.device, saved.profile, saved.planner_gguf, saved.model_folder) == (
        "cuda:1", "sd15", str(gguf), str(tmp_path))
    assert window.settings == saved
    assert "Stable Diffusion 1.5" in window.profile_label.text()
    assert "TEST MODELS" not in window.profile_label.text()
    # A new device is detected again in the worker (no CUDA here: it falls back and says so).
    qtbot.waitUntil(lambda: window.device_label.text() != "device: detecting…", timeout=60_000)
    wait_for_jobs(qtbot, window)


def test_model_manager_shows_roles_and_the_test_models(make_window, qtbot):
    window = make_window()
    manager = window.model_manager
    manager.show()
    table = manager.table
    qtbot.waitUntil(lambda: table.rowCount() == 6, timeout=30_000)
    roles = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(6)}
    for role in ("base", "inpaint", "segmenter", "clip", "detector"):
        assert roles[role] == "present"  # the tiny models of this session
    assert manager.warning.isVisible() and "pictures are noise" in manager.warning.text()
    manager.profile.setCurrentIndex(manager.profile.findData("sd15"))
    qtbot.waitUntil(lambda: table.rowCount() == 6 and table.item(0, 3).text().startswith(
        "stable-diffusion-v1-5/"), timeout=30_000)
    assert table.item(0, 1).text() == "missing" and not manager.warning.isVisible()
    assert manager.fetch.isEnabled() and "Missing: base" in manager.status.text()
    manager.hide()


def test_model_download_shows_progress_and_cancels(make_window, qtbot, monkeypatch):
    # A stand-in for the 6 GB download: progress until cancelled.
    monkeypatch.setitem(target_overrides, "ensure-models", "desktop_jobs_for_tests:slow_models_job")
    window = make_window()
    manager = window.model_manager
    manager.profile.setCurrentIndex(manager.profile.findData("sd15"))
    manager.show()
    qtbot.waitUntil(lambda: manager.fetch.isEnabled(), timeout=30_000)
    qtbot.mouseClick(manager.fetch, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: manager.bar.value() >= 3 and "MB" in manager.status.text(),
                    timeout=120_000)
    assert manager.bar.isVisible() and "left" in manager.status.text()
    qtbot.mouseClick(manager.cancel, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Missing" in manager.status.text(), timeout=60_000)
    assert manager.job is None and not manager.bar.isVisible()
    assert manager.status.text().startswith("Cancelled")
    assert window.jobs_panel.rows[list(window.jobs_panel.rows)[-1]].state.text() == "cancelled"
    wait_for_jobs(qtbot, window)
    manager.hide()


class Counter(Evented):
    value = Field(0)
    label = Field("")


def test_fields_emit_once_per_real_change_and_unbind(qapp):
    counter = Counter(value=1)
    seen: list[int] = []
    unbind = bind(counter, "value", seen.append)
    counter.value = 1
    counter.value = 2
    counter.label = "x"
    unbind()
    counter.value = 3
    assert seen == [1, 2]
    bindings = Bindings()
    labels: list[str] = []
    bindings.bind(counter, "label", labels.append)
    bindings.on(counter, "value", lambda v: labels.append(f"value {v}"))
    counter.value = 4
    bindings.clear()
    counter.value = 5
    counter.label = "y"
    assert labels == ["x", "value 4"]
    assert Settings() == Settings()  # AppState relies on dataclass equality
