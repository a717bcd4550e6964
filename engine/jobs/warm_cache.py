"""Models kept loaded between jobs of one worker process, under a memory budget.

Every stage asks here for its models, by one key shape: (role, profile, device, dtype) plus
an optional variant (the planner's GGUF path, the segmenter's method) and the precision it
computes in when that is not its weights' (bf16 autocast on a CPU): a job after a change of
the precision setting finds no warm model under its key, and loading the new one drops the
old one. Loading a model that
does not fit evicts the least recently used ones first; a job about to allocate a lot (a
training run) makes room explicitly; an out-of-memory retry evicts everything first.

The budget is a share of what the device could give us if we held nothing: its free memory
now plus what this cache already holds there. Sizes are measured from the loaded objects
(torch parameters and buffers; a file's size for a GGUF), or given by the caller.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
BUDGET_SHARE = 0.7  # of the device's memory: the rest is for activations and the OS


@dataclass(frozen=True)
class ModelKey:
    role: str  # a profile role: base, inpaint, segmenter, planner, clip, detector
    profile: str
    device: str
    dtype: str = "float32"  # the weights'
    variant: str = ""  # what else tells two loads of a role apart (a file, a method)
    compute: str = ""  # the autocast dtype it computes in ("bfloat16"), "" for its weights'

    def same_model(self, other: ModelKey) -> bool:
        """The same model in another precision: a precision change replaces it."""
        return (self.role, self.profile, self.device, self.variant) == (
            other.role, other.profile, other.device, other.variant)


def model_bytes(obj: Any, _depth: int = 0) -> int:
    """Bytes a loaded model holds: its own `warm_bytes`, torch parameters and buffers, or
    the modules among its attributes (a pipeline's components, a wrapper's pipeline)."""
    own = getattr(obj, "warm_bytes", None)
    if isinstance(own, int):
        return own
    try:
        from torch import nn
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    if isinstance(obj, nn.Module):
        tensors = [*obj.parameters(), *obj.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)
    if _depth >= 2:
        return 0
    values: list[Any] = []
    components = getattr(obj, "components", None)
    if isinstance(components, dict):
        values.extend(components.values())
    elif isinstance(obj, (list, tuple)):
        values.extend(obj)
    elif hasattr(obj, "__dict__"):
        values.extend(vars(obj).values())
    return sum(model_bytes(v, _depth + 1) for v in values
               if v is not None and not isinstance(v, (str, bytes, int, float)))


def device_budget(device: str, held: int) -> int | None:
    """BUDGET_SHARE of the memory `device` could give us if this cache held nothing."""
    from engine.device import free_memory

    free = free_memory(device)
    return None if free is None else int(BUDGET_SHARE * (free + held))


@dataclass
class _Entry:
    model: Any
    size: int


class WarmCache:
    """Loaded models by ModelKey, least recently used first out."""

    def __init__(self, budget: Callable[[str, int], int | None] = device_budget,
                 measure: Callable[[Any], int] = model_bytes) -> None:
        self._budget = budget
        self._measure = measure
        self._entries: OrderedDict[ModelKey, _Entry] = OrderedDict()
        self._lock = threading.RLock()
        self.evicted: list[ModelKey] = []  # in order, for logs and tests

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def loaded_keys(self) -> list[ModelKey]:
        with self._lock:
            return list(self._entries)

    def held(self, device: str | None = None) -> int:
        """Bytes held (on `device`, or in all)."""
        with self._lock:
            return sum(e.size for k, e in self._entries.items()
                       if device is None or _same_device(k.device, device))

    def get(self, key: ModelKey) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry.model

    def load(self, key: ModelKey, loader: Callable[[], T], size: int | None = None) -> T:
        """The warm model for `key`, loaded by `loader` if it is not here. A model that would
        not fit the device's budget beside the others first evicts the least recently used."""
        with self._lock:
            warm = self.get(key)
            if warm is not None:
                return warm
        # The same model held in another precision is stale (the setting changed): never both.
        self.evict_where(lambda held: held != key and held.same_model(key))
        if size is not None:
            self.make_room(key.device, size)
        model = loader()
        measured = self._measure(model) if size is None else size
        with self._lock:
            self._entries[key] = _Entry(model, measured)
            self._fit(key.device, keep=key)
        return model

    def make_room(self, device: str, nbytes: int, keep: ModelKey | None = None) -> None:
        """Evict least recently used models on `device` until `nbytes` more fit the budget."""
        with self._lock:
            self._fit(device, keep=keep, extra=nbytes)

    def evict(self, key: ModelKey) -> bool:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                return False
            self.evicted.append(key)
        del entry
        _release_memory()
        return True

    def evict_where(self, predicate: Callable[[ModelKey], bool]) -> list[ModelKey]:
        with self._lock:
            gone = [k for k in self._entries if predicate(k)]
            for key in gone:
                del self._entries[key]
            self.evicted.extend(gone)
        if gone:
            _release_memory()
        return gone

    def evict_all(self) -> list[ModelKey]:
        """Before an out-of-memory retry: nothing warm may stand in the retry's way."""
        return self.evict_where(lambda _key: True)

    def _fit(self, device: str, keep: ModelKey | None, extra: int = 0) -> None:
        held = self.held(device)
        budget = self._budget(device, held)
        if budget is None:
            return
        gone = []
        for key in list(self._entries):
            if held + extra <= budget:
                break
            if key == keep or not _same_device(key.device, device):
                continue
            held -= self._entries.pop(key).size
            gone.append(key)
        if gone:
            self.evicted.extend(gone)
            _release_memory()


def _same_device(a: str, b: str) -> bool:
    # "cuda" and "cuda:0" are one device; "cpu" is "cpu".
    def norm(d: str) -> str:
        return "cuda:0" if d == "cuda" else d

    return norm(a) == norm(b)


def _release_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
