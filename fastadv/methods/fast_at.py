"""Fast AT (FGSM with a random start) - Wong, Rice, Kolter, "Fast is better than free:
revisiting adversarial training", ICLR 2020.

    d0 ~ U(-eps, eps), d0 = P(d0)                       (random start clipped to the box)
    g  = grad_d CE(f(x + d0), y)                        (input gradient only)
    d  = P(d0 + alpha * sign(g)),  alpha = 1.25 * eps   (10/255 at eps 8/255)
    loss = CE(f(x + d), y)

BN stays in train mode (bn_mode="train"). Passes: 2 forward, 2 backward (the first input-only).
The official code also stops training when PGD-5 accuracy on one training batch collapses;
that guard lives in the training loop and is on by default for this method.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch.nn.functional as F

from fastadv import ops

from ._base import Method, StepOutput, bn_mode, input_grad


@dataclasses.dataclass(frozen=True)
class FastAT(Method):
    eps: float = 8 / 255
    alpha: Optional[float] = None  # None: 1.25 * eps
    init: str = "uniform"
    bn_mode: str = "train"

    name = "fast_at"
    guard_by_default = True

    def step_size(self) -> float:
        return 1.25 * self.eps if self.alpha is None else self.alpha

    def resolved(self) -> dict:
        return {**super().resolved(), "alpha": self.step_size()}

    def loss(self, model, x, y) -> StepOutput:
        alpha = self.step_size()
        with bn_mode(model, self.bn_mode):
            x_adv = ops.random_start(x, self.eps, kind=self.init).requires_grad_(True)
            grad = input_grad(F.cross_entropy(model(x_adv), y), x_adv)
            x_adv = ops.pgd_step(x_adv.detach(), grad, x, alpha=alpha, eps=self.eps)
        logits = model(x_adv)
        ce = F.cross_entropy(logits, y)
        return StepOutput(ce, logits, {"ce_adv": ce.detach()})
