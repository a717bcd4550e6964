"""A mask flagged as likely wrong (nearly the whole frame, a fragment) is shown as such: the
photo grid marks it and says to click, the editor says why and what to do."""

from __future__ import annotations

from engine.project import Project

from dataset_project import add_photo_with_cutout  # isort: skip

FLAG = "the mask covers 97% of the photo: the segmenter probably did not find the object"


def make_project(folder):
    from skimage import data

    with Project.create(folder, "Flags") as project:
        cat = project.add_concept("Mochi", "cat")
        add_photo_with_cutout(project, cat.id, data.chelsea(), "chelsea.png", 200)
        add_photo_with_cutout(project, cat.id, data.chelsea()[:, ::-1].copy(), "flipped.png",
                              200)
        current = project.current_masks(cat.id)
        first = current[min(current)]
        project.add_mask(first.photo_id, cat.id, first.file, "fallback-grabcut",
                         cutout_file=first.cutout_file, profile="sd15", flag=FLAG)
    return folder


def test_the_grid_and_the_editor_show_a_flagged_mask_with_a_hint_to_click(make_window, qtbot,
                                                                          tmp_path):
    window = make_window(make_project(tmp_path / "p"))
    tab = window.concepts_page
    grid = tab.page.grid
    qtbot.waitUntil(lambda: grid.count() == 2, timeout=30_000)
    flagged, fine = grid.item(0), grid.item(1)
    assert "⚠ check: click to fix" in flagged.text() and "⚠" not in fine.text()
    assert FLAG in flagged.toolTip()
    status = tab.page.status.text()
    assert "1 mask looks wrong" in status and "click on the object" in status

    grid.itemClicked.emit(flagged)
    assert tab.stack.currentWidget() is tab.editor
    qtbot.waitUntil(lambda: "Check this mask" in tab.editor.status.text(), timeout=30_000)
    text = tab.editor.status.text()
    assert FLAG in text and "click on the object or drag a box around it" in text


def test_the_plan_dialog_says_what_replaces_test_model_work(qtbot):
    from desktop_app.widgets.personalize_bar import PlanDialog
    from engine.personalize.jobs import Plan, StagePlan

    note = "3 pictures made with the test models will be rebuilt (never trained on)"
    plan = Plan(preset="quick", profile="sd15", test_models=False, device="cpu",
                device_kind="cpu", stages=[
                    StagePlan("segment", "Find the concepts in their photos", "photos", 4, 4, 0,
                              0.0, 0, "every photo has a mask (yours are kept)"),
                    StagePlan("dataset", "Build the dataset", "items", 3, 0, 3, 60.0, 1000,
                              note, rebuilds=3)])
    dialog = PlanDialog(plan)
    qtbot.addWidget(dialog)
    assert dialog.notes.isVisibleTo(dialog)
    assert f"⚠ Build the dataset: {note}." in dialog.notes.text()
    assert "Find the concepts" not in dialog.notes.text()
