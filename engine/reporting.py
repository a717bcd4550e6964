"""What long work reports to, as the layers below the jobs see it.

A job's context (engine.jobs.JobContext) is one; the foundation, the project store and the
model loaders type their `ctx` argument with this protocol, so they never import the jobs
layer above them.
"""

from __future__ import annotations

from typing import Any, Protocol


class Reporter(Protocol):
    def progress(self, step: int, total: int, message: str = "") -> None:
        """Report step/total; also a step boundary where a cancel is raised."""

    def log(self, text: str, level: str = "info") -> None: ...

    def preview(self, image: Any, caption: str = "", max_side: int = 512) -> None: ...

    def check_cancelled(self) -> None: ...


class SilentReporter:
    """Reports nowhere and is never cancelled: for direct calls outside a job."""

    def progress(self, step: int, total: int, message: str = "") -> None:
        pass

    def log(self, text: str, level: str = "info") -> None:
        pass

    def preview(self, image: Any, caption: str = "", max_side: int = 512) -> None:
        pass

    def check_cancelled(self) -> None:
        pass
