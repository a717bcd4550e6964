"""Stands in for the window in kill tests: a Qt application that starts the worker exactly as
the window does (a JobsBridge, which owns the JobRunner) and submits one job. Prints
"worker PID" once the job reports progress past its start, then runs until it is killed.

    python tests/window_stand_in.py JOB_NAME 'PARAMS_JSON' MIN_STEP
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    from PySide6.QtCore import QCoreApplication

    from desktop_app.state.jobs_bridge import JobsBridge
    from engine.jobs import JobProgress

    name, params, min_step = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    app = QCoreApplication([])
    bridge = JobsBridge()
    told = []

    def on_event(event: object) -> None:
        if isinstance(event, JobProgress) and event.step >= min_step and not told:
            told.append(True)
            print(f"worker {bridge.runner.worker_pid}", flush=True)

    bridge.submit(name, params, on_event=on_event)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
