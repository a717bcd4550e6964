"""Run a diffusers pipeline inside a job: progress and cancel at every denoising step, and one
retry in lean mode when the device runs out of memory.

Used by every stage that calls a pipeline (dataset inpainting, training previews,
generation), so each gets the same behaviour:

* `on_step(step, total)` after each denoising step; a Cancelled raised there (or by the
  job's cancel check) stops the pipeline at once and nothing is returned: raising from
  `callback_on_step_end` ends the loop before the next UNet call, where diffusers' own
  interrupt flag would still run the VAE decode (tens of seconds on a CPU). An optional
  `on_latents(step, latents)` then sees the step's latents (generation's previews).
* On out-of-memory (a torch OOM, a MemoryError, an allocator RuntimeError): every warm model
  is evicted, caches are emptied, the device plan turns every memory saver on, and the call
  is made once more with a fresh generator (the same seed paints the same picture). A second
  out-of-memory is a clear error. The retry's output is checked like the first one's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from engine.device import DevicePlan
    from engine.jobs.warm_cache import WarmCache

T = TypeVar("T")
StepCallback = Callable[[int, int], None]
LatentsCallback = Callable[[int, Any], None]


class PipelineRunner:
    """A loaded pipeline and the device plan its memory savers follow."""

    def __init__(self, pipe: Any, plan: DevicePlan, models: WarmCache | None = None,
                 log: Callable[[str], None] | None = None, memory_savers: bool = True) -> None:
        self.pipe = pipe
        self.plan = plan
        self.models = models
        self.log = log
        # False for a pipeline that is also being trained: slicing its attention would change
        # the training steps too. Its retry then only frees the warm models and the caches.
        self.memory_savers = memory_savers
        self._applied: DevicePlan | None = None

    def apply(self, plan: DevicePlan) -> None:
        """Switch the pipeline's memory savers to `plan` (once per plan)."""
        if not self.memory_savers:
            self.plan = plan
            return
        if plan != self._applied:
            from engine.device import apply_memory_savers

            apply_memory_savers(self.pipe, plan)
            self._applied = self.plan = plan

    def step_callback(self, on_step: StepCallback | None,
                      check_cancelled: Callable[[], None] | None, total: int,
                      on_latents: LatentsCallback | None = None) -> Any:
        """A `callback_on_step_end` that reports each step and raises Cancelled; then, if
        given, hands `on_latents(step, latents)` the step's latents (e.g. for a preview)."""

        def step_end(pipe: Any, index: int, _t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if on_step is not None:
                # The scheduler decides the exact count (PNDM adds one); the pipeline knows it.
                on_step(index + 1, int(getattr(pipe, "num_timesteps", 0) or total))
            if check_cancelled is not None:
                check_cancelled()
            if on_latents is not None and tensors.get("latents") is not None:
                on_latents(index + 1, tensors["latents"])
            return tensors

        return step_end

    def run(self, call: Callable[[DevicePlan], T], check: Callable[[T], T] | None = None) -> T:
        """`call(plan)` with the savers of `plan` applied, retried once lean on OOM; `check`
        validates (and may convert) the output of whichever attempt succeeded."""
        from engine.device import retry_on_oom

        def attempt(plan: DevicePlan) -> T:
            self.apply(plan)
            out = call(plan)
            return check(out) if check is not None else out

        def make_room() -> None:
            if self.models is not None:
                gone = self.models.evict_all()
                if gone and self.log:
                    self.log(f"Out of memory: unloaded {len(gone)} warm model(s) first")

        return retry_on_oom(attempt, self.plan, self.log, before_retry=make_room)
