"""Jobs used by the job-runner tests; the worker process imports this module by name."""

from __future__ import annotations

import os
import signal
import time

from engine.errors import MyCanvasError


def count_job(ctx, steps: int = 5, delay: float = 0.01) -> int:
    for i in range(steps):
        time.sleep(delay)
        ctx.progress(i + 1, steps, f"step {i + 1}")
    return steps


def warm_job(ctx) -> dict:
    """Counts how many times it ran in this worker: proves the cache survives between jobs."""
    ctx.cache["runs"] = ctx.cache.get("runs", 0) + 1
    return {"runs": ctx.cache["runs"], "pid": os.getpid()}


def fail_job(ctx, readable: bool = True) -> None:
    ctx.progress(0, 1)
    if readable:
        raise MyCanvasError("The photo cat.png is not an image")
    raise ValueError("list index out of range")


def oom_job(ctx) -> None:
    ctx.progress(0, 1)
    bytearray(1 << 50)  # a petabyte: the allocator refuses at once with MemoryError


def die_job(ctx, how: str = "kill") -> None:
    ctx.progress(0, 1, "about to die")
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(3)


def stubborn_job(ctx, seconds: float = 30.0) -> None:
    """Never reaches a step boundary: only the runner's cancel grace can stop it."""
    ctx.progress(0, 1)
    time.sleep(seconds)


def preview_job(ctx) -> str:
    from PIL import Image

    ctx.log("drawing a preview")
    ctx.preview(Image.new("RGB", (1024, 512), (200, 30, 30)), caption="red")
    return "ok"


def project_items_job(ctx, project: str, steps: int = 50, delay: float = 0.02) -> int:
    """Adds one catalogued file + layout per step; cancelled half-way it must leave a sound
    project: every row points at a complete file, no temp files left behind."""
    from engine.project import Project
    from engine.project.records import Layout

    with Project.open(project) as proj:
        for i in range(steps):
            ctx.progress(i, steps)
            rel = proj.put_bytes(f"item {i}".encode() * 1000, "txt")
            proj.add_layout(Layout(id=None, scene=f"scene {i}", caption=rel, objects=()))
            time.sleep(delay)
    return steps


def meta_writer_job(ctx, project: str, seconds: float = 5.0, prefix: str = "w",
                    reopen_every: int = 5) -> int:
    """Writes meta keys prefix0, prefix1, ... for `seconds`, closing and reopening the project
    every few writes (each close may be "the last connection" that checkpoints the WAL)."""
    from engine.project import Project

    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        with Project.open(project) as proj:
            for _ in range(reopen_every):
                proj.set_meta(f"{prefix}{n}", "v")
                n += 1
        ctx.progress(min(int(seconds), int(seconds - (deadline - time.monotonic()))),
                     max(1, int(seconds)))
        time.sleep(0.01)
    return n


def personalize_waits(ctx, params) -> None:
    """Stands in for Personalize's chain in journal tests: works until it is killed."""
    ctx.progress(0, 1, "working")
    time.sleep(600)


def personalize_returns(ctx, params) -> None:
    """Stands in for a Personalize that finds nothing left to do."""
    ctx.progress(1, 1, "nothing to do")


def missing_model_job(ctx) -> None:
    """Fails as a job does when a model's weights are not here (engine.models.profiles)."""
    from engine.errors import ModelMissingError
    from engine.models.profiles import get_profile, missing_fields, missing_message

    profile = get_profile("sd15")
    spec = profile.role("base")
    ctx.progress(0, 1)
    raise ModelMissingError(missing_message(profile, spec, "no connection"),
                            **missing_fields(profile, spec, "no connection"))
