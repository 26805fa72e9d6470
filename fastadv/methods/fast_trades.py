"""Fast TRADES (single-step TRADES, and its 2-step variant) - the fast TRADES baseline of
Chen, Cheng, Gan, Gu, Liu, "Efficient robust training via backward smoothing", AAAI 2022.

As TRADES (Zhang et al., ICML 2019), but
    x_adv = x + U(-eps, eps)        (not box-clamped before the step)
    K = 1 signed KL-ascent step of alpha = eps (the official default; the paper's tables use
    6/255), or K = 2 steps of alpha = 5/255 at eps 8/255 (resolved here as 0.625 * eps).
Loss: CE(f(x), y) + beta * KL_sum(softmax(f(x)) || softmax(f(x_adv))) / B, beta = 6.
Passes (K = 1): 2 eval forwards, 1 input-only backward, 2 train forwards, 1 backward.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from ._base import StepOutput, bn_mode
from .trades import TRADES, kl_ascent, trades_objective


@dataclasses.dataclass(frozen=True)
class FastTRADES(TRADES):
    alpha: Optional[float] = None  # None: eps for 1 step, 0.625 * eps (5/255 at 8/255) for more
    steps: int = 1
    init: str = "uniform"

    name = "fast_trades"

    def step_size(self) -> float:
        if self.alpha is not None:
            return self.alpha
        return self.eps if self.steps == 1 else 0.625 * self.eps

    def loss(self, model, x, y) -> StepOutput:
        with bn_mode(model, self.bn_mode):
            x_adv = kl_ascent(model, x, self.start(x), self.steps, self.step_size(), self.eps)
        return trades_objective(model, x, x_adv, y, self.beta)
