"""Issue 12, item 9: when models are missing the window says which and how big they are, never
tells a window user to run a terminal command, offers to retry, and lets each model come from
its own folder (Settings.role_overrides, which every job uses)."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QPushButton

import desktop_app.pages.model_manager as model_manager
from engine.jobs.registry import target_overrides
from engine.segment.jobs import SEGMENT
from engine.settings import load_settings

from dataset_project import make_dataset_project  # isort: skip
from qt_helpers import wait_for_jobs  # isort: skip


def row_of(table, role: str) -> int:
    return next(r for r in range(table.rowCount()) if table.item(r, 0).text() == role)


def sd15_manager(window, qtbot):
    manager = window.model_manager
    manager.profile.setCurrentIndex(manager.profile.findData("sd15"))
    manager.show()
    qtbot.waitUntil(lambda: manager.table.rowCount() == 6 and manager.fetch.isEnabled(),
                    timeout=30_000)
    return manager


def test_missing_models_are_named_with_their_size_and_a_failed_download_offers_a_retry(
        make_window, qtbot, monkeypatch):
    monkeypatch.setitem(target_overrides, "ensure-models",
                        "desktop_jobs_for_tests:offline_models_job")
    # The Hub knows the base model's exact size; the others stay at the table's estimate.
    monkeypatch.setattr(model_manager, "hub_sizes", lambda profile, roles: {
        role: (2_133_000_000, "") if role == "base" else
        (None, "the Hugging Face Hub cannot be reached from here") for role in roles})
    window = make_window()
    manager = sd15_manager(window, qtbot)
    table = manager.table
    qtbot.waitUntil(lambda: table.item(row_of(table, "base"), 2).text() == "2.1 GB",
                    timeout=30_000)
    # the half-precision download (the profile table's fp16 variant)
    assert table.item(row_of(table, "inpaint"), 2).text() == "about 2.1 GB"
    assert table.item(row_of(table, "segmenter"), 2).text() == "about 375 MB"
    assert "Missing: base (2.1 GB), inpaint (about 2.1 GB)" in manager.status.text()
    assert "In all about 5.9 GB" in manager.status.text()
    assert "mycanvas" not in table.item(row_of(table, "base"), 4).text()
    qtbot.mouseClick(manager.fetch, Qt.MouseButton.LeftButton)
    # Failed, and the roles looked up again (the status names them once they are).
    qtbot.waitUntil(lambda: manager.job is None and "failed" in manager.status.text()
                    and "Missing:" in manager.status.text(), timeout=120_000)
    status = manager.status.text()
    assert status.startswith("The download failed: no connection to the Hugging Face Hub.")
    assert "base (2.1 GB)" in status and "choose the folder" in status
    assert "mycanvas" not in status and "`" not in status
    assert manager.fetch.isEnabled() and manager.fetch.text() == "Retry the download"
    # The jobs list says the same in window words and offers the Models window.
    row = window.jobs_panel.rows[list(window.jobs_panel.rows)[-1]]
    assert row.state.text() == "failed" and "mycanvas" not in row.detail.text()
    assert "Open Models…" in row.detail.text() and row.models.isVisible()
    wait_for_jobs(qtbot, window)
    manager.hide()


def test_each_model_can_come_from_its_own_folder(make_window, qtbot, tiny_models,
                                                 monkeypatch):
    window = make_window()
    manager = sd15_manager(window, qtbot)
    table = manager.table
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        lambda *a, **k: str(tiny_models["base"]))
    choose = manager.findChild(QPushButton, "chooseFolder-base")
    qtbot.mouseClick(choose, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: table.rowCount() == 6
                    and table.item(row_of(table, "base"), 1).text() == "present",
                    timeout=30_000)
    assert "set in settings" in table.item(row_of(table, "base"), 3).text()
    assert load_settings().role_overrides == {"base": str(tiny_models["base"])}
    assert window.settings.role_overrides == {"base": str(tiny_models["base"])}
    assert manager.profile_name() == "sd15"  # the view stays on the profile being set up
    # A SAM checkpoint is one file: its button asks for a file.
    assert manager.findChild(QPushButton, "chooseFolder-segmenter").text() == "Choose file…"
    forget = manager.findChild(QPushButton, "forgetFolder-base")
    qtbot.mouseClick(forget, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: table.rowCount() == 6
                    and table.item(row_of(table, "base"), 1).text() == "missing",
                    timeout=30_000)
    assert load_settings().role_overrides == {}
    manager.hide()


def test_a_job_that_lacks_a_model_points_at_the_models_window(make_window, qtbot, tmp_path):
    window = make_window(make_dataset_project(tmp_path / "p"))
    window.state.settings = replace(window.state.settings, profile="sd15")
    params = window.state.job_params(SEGMENT, concept=2, redo=True, method="sam")
    handle = window.jobs.submit(SEGMENT, params, on_event=lambda e: None)
    wait_for_jobs(qtbot, window)
    row = window.jobs_panel.rows[handle.job_id]
    assert row.state.text() == "failed" and row.models.isVisible()
    assert "segmenter" in row.detail.text() and "mycanvas" not in row.detail.text()
    qtbot.mouseClick(row.models, Qt.MouseButton.LeftButton)
    assert window.model_manager.isVisible()
    qtbot.waitUntil(lambda: window.model_manager.table.rowCount() == 6, timeout=30_000)
    window.model_manager.hide()


def test_sizes_from_the_hub_or_why_not(monkeypatch):
    import engine.models.hub as hub

    class OfflineModeIsEnabled(Exception):
        pass

    def offline(spec):
        raise OfflineModeIsEnabled("HF_HUB_OFFLINE is set")

    monkeypatch.setattr(hub, "plan_files", offline)
    assert model_manager.hub_sizes("sd15", ["base", "planner"]) == {
        "base": (None, "offline mode is on")}  # the planner is no download
    monkeypatch.setattr(hub, "plan_files", lambda spec: [("a", 1_000_000, None),
                                                         ("b", 2_500_000, None)])
    assert model_manager.hub_sizes("sd15", ["clip"]) == {"clip": (3_500_000, "")}
    assert model_manager.size_text(3_500_000) == "4 MB"
    assert model_manager.size_text(4_265_000_000) == "4.3 GB"
