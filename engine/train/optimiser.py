"""One optimiser step: gradient accumulation, the fp16 gradient scaler, clipping, and the
learning-rate schedule, around AdamW over whatever parameter groups a trainer hands in.

A trainer gives a function `micro_loss(micro) -> (loss, parts)` for each of its
`accumulation` micro-batches; each loss is divided by the count before its backward, so the
step equals one over the concatenated batch (for a mean loss over equal micro-batches).
Parameters must require gradients: a frozen tensor handed in by mistake (e.g. the text
encoder's embedding matrix) is refused rather than silently decayed by AdamW.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from engine.errors import InputError

MicroLoss = Callable[[int], tuple[torch.Tensor, dict[str, float]]]


class OptimiserStep:
    """AdamW stepped once per `accumulation` micro-batches; learning rate constant after a
    linear warm-up over the first `warmup_steps` steps; `max_grad_norm` 0 clips nothing."""

    def __init__(self, params: Iterable[Any], learning_rate: float, *, accumulation: int = 1,
                 max_grad_norm: float = 1.0, warmup_steps: int = 0,
                 fp16_scaler: bool = False) -> None:
        self.optimizer = torch.optim.AdamW(params, lr=learning_rate)
        self.parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        frozen = [i for i, p in enumerate(self.parameters) if not p.requires_grad]
        if frozen:
            raise ValueError(f"Parameter {frozen[0]} given to the optimiser is frozen "
                             "(requires_grad is False); hand in only what trains")
        self.base_learning_rate = learning_rate
        self.accumulation = accumulation
        self.max_grad_norm = max_grad_norm
        self.warmup_steps = warmup_steps
        self.scaler = torch.amp.GradScaler("cuda") if fp16_scaler else None

    def learning_rate(self, step: int) -> float:
        lr = self.base_learning_rate
        return lr * min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else lr

    def step(self, step: int, micro_loss: MicroLoss) -> dict[str, float]:
        """Optimiser step number `step` (0-based); returns loss, lr, grad_norm and the mean
        of each part micro_loss reported."""
        lr = self.learning_rate(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        totals: dict[str, float] = {}
        loss_sum = 0.0
        try:
            for micro in range(self.accumulation):
                loss, parts = micro_loss(micro)
                scaled = loss / self.accumulation
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
                loss_sum += float(loss.detach())
                for key, value in parts.items():
                    totals[key] = totals.get(key, 0.0) + value / self.accumulation
            if self.scaler:
                self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.parameters,
                                                       self.max_grad_norm or math.inf)
            if self.scaler:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
        finally:
            # Also after a failure: an out-of-memory retry must start from clean gradients.
            self.optimizer.zero_grad(set_to_none=True)
        loss_value = loss_sum / self.accumulation
        if not math.isfinite(loss_value):
            raise InputError(f"The loss became {loss_value} at step {step + 1}; lower the "
                             "learning rate or use mixed_precision 'no'")
        return {"loss": loss_value, "lr": lr, "grad_norm": float(grad_norm), **totals}

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def scaler_state(self) -> dict[str, Any] | None:
        return self.scaler.state_dict() if self.scaler else None

    def load_state(self, optimizer_state: dict[str, Any],
                   scaler_state: dict[str, Any] | None = None) -> None:
        self.optimizer.load_state_dict(optimizer_state)
        if self.scaler and scaler_state:
            self.scaler.load_state_dict(scaler_state)
