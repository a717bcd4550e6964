"""The window on the sd15 profile with its download rehearsed (tests/hf_rehearsal.py): the
first-run notice and the Models window read the same Hugging Face cache as `mycanvas doctor`,
so neither asks for a download that is there."""

from __future__ import annotations

import pytest

from desktop_app.main_window import MainWindow
from engine.project import Project
from engine.settings import Settings

from hf_rehearsal import PROFILE, downloaded_roles, ensure_rehearsal, using_rehearsal  # isort: skip

pytestmark = pytest.mark.slow


def row_of(table, role: str) -> int:
    return next(r for r in range(table.rowCount()) if table.item(r, 0).text() == role)


def test_first_run_and_models_window_see_the_rehearsed_download(qtbot, tmp_path, monkeypatch):
    hub = ensure_rehearsal()
    with using_rehearsal(hub, monkeypatch):
        folder = tmp_path / "p"
        Project.create(folder, "p").close()
        window = MainWindow(Settings(profile=PROFILE, device="cpu"))
        qtbot.addWidget(window)
        window.show()
        try:
            window.open_project(folder)
            banner = window.banner
            for page in (window.train_page, window.dataset_page, window.gallery_page,
                         window.generate_page):
                window.steps.setCurrentWidget(page)
                # The lookup answered (it names the cache it looked in), and found them all.
                qtbot.waitUntil(lambda: banner.folder == str(hub), timeout=30_000)
                assert not set(downloaded_roles()) & set(banner.missing), banner.missing
                assert not banner.isVisible(), banner.text.text()
            manager = window.model_manager
            manager.profile.setCurrentIndex(manager.profile.findData(PROFILE))
            manager.show()
            table = manager.table
            qtbot.waitUntil(lambda: table.rowCount() == 6 and all(
                table.item(row_of(table, r), 1).text() == "present"
                for r in downloaded_roles()), timeout=30_000)
            for role in downloaded_roles():
                assert str(hub) in table.item(row_of(table, role), 1).toolTip() or \
                    str(hub) in table.item(row_of(table, role), 0).toolTip()
            assert not set(downloaded_roles()) & set(manager.missing)
            manager.hide()
        finally:
            window.close()
