"""Foundation benchmarks: start-up costs and the tiny profile."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import REPO, benchmark


def _median_seconds(cmd: list[str], runs: int = 5) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=True)
        times.append(time.perf_counter() - t0)
        out = proc.stdout
    return statistics.median(times), out


@benchmark("startup")
def startup() -> list[dict]:
    probe = "import sys, engine; print('torch' in sys.modules)"
    t_import, out = _median_seconds([sys.executable, "-c", probe])
    t_bare, _ = _median_seconds([sys.executable, "-c", "pass"])
    t_help, _ = _median_seconds([sys.executable, "-m", "desktop_app.launcher", "--help"])
    return [
        {"metric": "python -c 'import engine' (process, median of 5)", "value": t_import,
         "unit": "s", "note": f"bare interpreter {t_bare:.3f} s; torch imported: {out.strip()}"},
        {"metric": "mycanvas --help (process, median of 5)", "value": t_help, "unit": "s",
         "target": "< 1 s"},
    ]


@benchmark("worker")
def worker() -> list[dict]:
    from engine.jobs import JobFinished
    from engine.jobs.worker import JobRunner

    starts, first_jobs = [], []
    for _ in range(3):
        runner = JobRunner()
        t0 = time.perf_counter()
        runner.start()
        starts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        end = runner.submit("device-info", {"requested": "cpu"}).wait(120)
        first_jobs.append(time.perf_counter() - t0)
        assert isinstance(end, JobFinished), end
        t0 = time.perf_counter()
        runner.submit("device-info", {"requested": "cpu"}).wait(120)
        warm = time.perf_counter() - t0
        runner.shutdown()
    return [
        {"metric": "worker process start → ready (median of 3)",
         "value": statistics.median(starts), "unit": "s"},
        {"metric": "first job incl. torch import (device-info)",
         "value": statistics.median(first_jobs), "unit": "s"},
        {"metric": "same job again, warm worker", "value": warm, "unit": "s"},
    ]


@benchmark("tiny-profile")
def tiny_profile() -> list[dict]:
    from engine.models import loaders, tiny

    root = Path(tempfile.mkdtemp(prefix="bench-tiny-"))
    try:
        t0 = time.perf_counter()
        paths = tiny.ensure_tiny_models(root=root)
        build = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        rows = [{"metric": "build every tiny role (cold)", "value": build, "unit": "s",
                 "note": f"{size / 1e6:.1f} MB on disk"}]
        load = {
            "base": lambda p: loaders.load_text_to_image(p),
            "inpaint": lambda p: loaders.load_inpaint(p),
            "segmenter": lambda p: loaders.load_segmenter(p),
            "clip": lambda p: loaders.load_clip(p),
            "detector": lambda p: loaders.load_detector(p),
        }
        for role, fn in load.items():
            t0 = time.perf_counter()
            fn(paths[role])
            rows.append({"metric": f"load tiny {role} through its loader", "unit": "s",
                         "value": time.perf_counter() - t0})
        return rows
    finally:
        shutil.rmtree(root, ignore_errors=True)
