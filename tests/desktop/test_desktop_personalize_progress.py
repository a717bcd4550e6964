"""The Personalize bar's fraction and ETA from a real chain on the tiny profile: the bar only
moves forward, moves with training's steps (training's dataset encoding once jumped it to the
stage's end at step 13), the time left falls as the chain goes, and what the stages took
refines the next plan the window shows."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt

from engine.jobs import JobProgress, JobStarted
from engine.personalize.timings import timings_path

from qt_helpers import wait_for_jobs  # isort: skip
from test_desktop_personalize import _plan, photos_only_project  # isort: skip


def test_the_bar_follows_the_chains_time_and_the_next_plan_learns(make_window, qtbot,
                                                                   tmp_path, photos):
    timings_path().unlink(missing_ok=True)  # this machine has no stage timings yet
    folder = tmp_path / "p"
    photos_only_project(folder, photos)
    window = make_window(folder)
    bar = window.personalize
    dialog = _plan(qtbot, window)
    assert "refined by what" not in dialog.total.text()
    seen: list[tuple[float, float, float | None, str]] = []

    chains: set[str] = set()

    def watch(event):  # connected after the bridge's routing: the bar has shown the event
        if isinstance(event, JobStarted) and event.name == "personalize":
            chains.add(event.job_id)
        if isinstance(event, JobProgress) and event.job_id in chains:
            seen.append((time.monotonic(), bar.bar.value() / bar.bar.maximum(),
                         event.eta_seconds, event.message))

    window.jobs.event.connect(watch)
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    wait_for_jobs(qtbot, window)
    assert bar.stage.text().startswith("Personalized"), bar.stage.text()
    fractions = [f for _t, f, _e, _m in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # Training's span fills with its steps: halfway through them, about halfway through it.
    train = [(f, m) for _t, f, _e, m in seen if "] Training" in m]
    begin, end = train[0][0], train[-1][0]
    steps = [(int(m.split("step ")[1].split("/")[0]), int(m.split("/")[2].split(",")[0]), f)
             for f, m in train if "Training: step " in m]
    assert steps and end - begin > 0.02
    middle = min(steps, key=lambda s: abs(s[0] / s[1] - 0.5))
    assert 0.2 < (middle[2] - begin) / (end - begin) < 0.8, (middle, begin, end)
    # The time left falls while the chain runs: in the second half it is below the first's.
    etas = [e for _t, _f, e, _m in seen if e is not None]
    half = len(etas) // 2
    assert max(etas[half:]) < max(etas[:half])
    # What each stage took is kept, and the next plan says it is refined by it.
    assert timings_path().is_file()
    bar.preset.setCurrentIndex(bar.preset.findData("standard"))
    again = _plan(qtbot, window)
    assert "refined by what" in again.total.text()
    again.reject()
