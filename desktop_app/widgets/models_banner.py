"""First run: when the chosen profile's models are not on this computer, the step on show
says so (which models that step needs, how big the download is, where it goes) and offers
both ways on: get the models (the Models window: download with progress, or choose a folder
that holds them) or try with the test models (the tiny profile: every stage runs, pictures
are noise).

Which roles are present is looked up off the GUI thread (it touches the Hugging Face cache),
first when a step is shown (not at start-up: the window appears before huggingface_hub is
imported); the banner follows the settings and the step on show.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from desktop_app.pages.model_manager import role_statuses, size_text
from desktop_app.state.observable import AppState, Bindings
from desktop_app.state.thumbnails import BackgroundLoader
from engine.models.profiles import get_profile
from engine.score.jobs import SCORING_ROLES

TEST_PROFILE = "tiny"
# The model roles each step needs; a step not listed needs none.
STEP_ROLES: dict[str, tuple[str, ...]] = {
    "Concepts": ("segmenter",), "Layouts": ("planner",), "Dataset": ("inpaint",),
    "Train": ("base",), "Extract": ("base",), "Generate": ("base",),
    "Gallery": SCORING_ROLES,
}


def models_folder() -> str:
    """Where downloaded weights go: the Hugging Face cache, shared with other tools."""
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - a dependency of the app
        return "the Hugging Face cache"


def missing_roles(profile: str, overrides: dict[str, str]) -> dict[str, Any]:
    """Role -> status of the roles the user has to get (RoleStatus.needs_download: tiny
    models are built and the planner GGUF assembled on first use, so they do not count)."""
    out = {status.role: status for status in role_statuses(profile, overrides)
           if status.needs_download}
    return {"missing": out, "folder": models_folder()}


class ModelsBanner(QWidget):
    models_requested = Signal()

    def __init__(self, state: AppState, loader: BackgroundLoader) -> None:
        super().__init__()
        self.setObjectName("modelsBanner")
        self.setStyleSheet("#modelsBanner { background: #fff4d6; } QLabel { color: #6b4e00 }")
        self.state, self.loader = state, loader
        self.step = ""
        self.missing: dict[str, Any] = {}
        self.folder = ""
        self._profile = ""
        self._request = 0
        self._looked_for = ""  # the profile whose roles were looked up (or are being)
        self.text = QLabel()
        self.text.setObjectName("modelsBannerText")
        self.text.setWordWrap(True)
        self.get_button = QPushButton("Get the models…")
        self.get_button.setObjectName("getModels")
        self.get_button.clicked.connect(self.models_requested)
        self.test_button = QPushButton("Try with the test models")
        self.test_button.setObjectName("useTestModels")
        self.test_button.setToolTip("Switch to the tiny test profile: every step runs, fast, "
                                    "but the pictures are noise")
        self.test_button.clicked.connect(self.use_test_models)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 8, 4)
        row.addWidget(self.text, 1)
        row.addWidget(self.get_button)
        row.addWidget(self.test_button)
        self.hide()
        loader.ready.connect(self._looked_up)
        self.bindings = Bindings()
        self.bindings.on(state, "settings", lambda _s: self.step and self.refresh())

    def refresh(self) -> None:
        """Look the profile's roles up again (after a download, another profile)."""
        settings = self.state.settings
        self._profile = self._looked_for = get_profile(settings.profile or None).name
        self._request += 1
        self.loader.request(("models-banner", self._profile, self._request), missing_roles,
                            self._profile, dict(settings.role_overrides))

    def _looked_up(self, key: object, answer: object) -> None:
        if not (isinstance(key, tuple) and key[0] == "models-banner"
                and key[1:] == (self._profile, self._request) and isinstance(answer, dict)):
            return
        self.missing, self.folder = answer["missing"], answer["folder"]
        self.show_for(self.step)

    def show_for(self, step: str) -> None:
        """Say what the step `step` lacks, or hide."""
        self.step = step
        if step and self._looked_for != get_profile(self.state.settings.profile or None).name:
            self.refresh()  # shown again when the answer comes
            return
        needed = [r for r in STEP_ROLES.get(step, ()) if r in self.missing]
        if not needed:
            self.hide()
            return
        profile = get_profile(self._profile or None)
        sizes = [profile.role(r).approx_download_mb for r in needed]
        size = (f"about {size_text(sum(s for s in sizes if s) * 1e6)}"
                if all(sizes) else "size shown in the Models window")
        self.text.setText(
            f"<b>The {step} step needs models that are not on this computer</b>: "
            f"{', '.join(needed)} of the “{profile.label}” profile ({size} to download, into "
            f"{self.folder}). Get them, or try the app with the test models (every step "
            "runs, but the pictures are noise).")
        self.show()

    def use_test_models(self) -> None:
        problem = self.state.save_settings(replace(self.state.settings, profile=TEST_PROFILE))
        if problem:
            self.text.setText(problem)

    def teardown(self) -> None:
        self.bindings.clear()
