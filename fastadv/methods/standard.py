"""Standard (non-adversarial) training: loss = CE(f(x), y).

The baseline every robust method is compared against. ``eps`` is not used by the loss; it only
tells the training loop which radius to validate robustness at.
"""
from __future__ import annotations

import dataclasses

import torch.nn.functional as F

from ._base import Method, StepOutput


@dataclasses.dataclass(frozen=True)
class Standard(Method):
    eps: float = 8 / 255

    name = "standard"

    def loss(self, model, x, y) -> StepOutput:
        logits = model(x)
        ce = F.cross_entropy(logits, y)
        return StepOutput(ce, logits, {"ce": ce.detach()})
