"""First run: on a profile whose models are not on this computer, each step that needs them
says which, how big and where they go, and offers to get them or to try the test models;
trying the test models switches the profile and the notice goes."""

from __future__ import annotations

from PySide6.QtCore import Qt

from desktop_app.main_window import MainWindow
from engine.project import Project
from engine.settings import Settings, load_settings


def test_missing_models_are_named_on_each_step_that_needs_them(qtbot, tmp_path, monkeypatch):
    folder = tmp_path / "p"
    Project.create(folder, "p").close()
    window = MainWindow(Settings(profile="sd15", device="cpu"))
    qtbot.addWidget(window)
    window.show()
    try:
        window.open_project(folder)
        banner = window.banner
        window.steps.setCurrentWidget(window.train_page)
        qtbot.waitUntil(banner.isVisible, timeout=30_000)
        text = banner.text.text()
        assert "Train step" in text and "base" in text and "GB" in text
        assert banner.folder and banner.folder in text  # where they go
        for page, role in ((window.generate_page, "base"), (window.gallery_page, "clip"),
                           (window.dataset_page, "inpaint")):
            window.steps.setCurrentWidget(page)
            assert banner.isVisible() and role in banner.text.text()
        shown = []
        monkeypatch.setattr(window, "show_models", lambda: shown.append(True))
        window.banner.models_requested.disconnect()
        window.banner.models_requested.connect(window.show_models)
        qtbot.mouseClick(banner.get_button, Qt.MouseButton.LeftButton)
        assert shown
        qtbot.mouseClick(banner.test_button, Qt.MouseButton.LeftButton)
        assert window.settings.profile == "tiny" and load_settings().profile == "tiny"
        qtbot.waitUntil(lambda: not banner.isVisible(), timeout=30_000)
        assert "TEST MODELS" in window.profile_label.text()
    finally:
        window.close()
