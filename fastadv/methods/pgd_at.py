"""PGD adversarial training - Madry, Makelov, Schmidt, Tsipras, Vladu, "Towards deep learning
models resistant to adversarial attacks", ICLR 2018 (best-checkpoint selection on held-out
PGD accuracy: Rice, Wong, Kolter, "Overfitting in adversarially robust deep learning",
ICML 2020). PGD-2-AT is the two-step baseline of the Fast-BAT paper (Zhang et al., ICML 2022).

    d0 ~ U(-eps, eps), d0 = P(d0)
    K times: d = P(d + alpha * sign(grad_d CE(f(x + d), y)))
    loss = CE(f(x + d), y)

PGD-10: K = 10, alpha = 2/255. PGD-2-AT: K = 2, alpha = eps / 2. BN mode train.
Passes: K + 1 forward, K input-only backward + 1 backward.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch.nn.functional as F

from fastadv import ops

from ._base import Method, StepOutput, bn_mode, input_grad


@dataclasses.dataclass(frozen=True)
class PGDAT(Method):
    eps: float = 8 / 255
    alpha: Optional[float] = 2 / 255  # None: eps / 4 (the PGD-10 ratio at eps 8/255)
    steps: int = 10
    init: str = "uniform"
    bn_mode: str = "train"

    name = "pgd_at"

    def step_size(self) -> float:
        return self.eps / 4 if self.alpha is None else self.alpha

    def resolved(self) -> dict:
        return {**super().resolved(), "alpha": self.step_size()}

    def loss(self, model, x, y) -> StepOutput:
        alpha = self.step_size()
        with bn_mode(model, self.bn_mode):
            x_adv = ops.random_start(x, self.eps, kind=self.init)
            for _ in range(self.steps):
                x_adv.requires_grad_(True)
                grad = input_grad(F.cross_entropy(model(x_adv), y), x_adv)
                x_adv = ops.pgd_step(x_adv.detach(), grad, x, alpha=alpha, eps=self.eps)
        logits = model(x_adv)
        ce = F.cross_entropy(logits, y)
        return StepOutput(ce, logits, {"ce_adv": ce.detach()})


@dataclasses.dataclass(frozen=True)
class PGD2AT(PGDAT):
    """PGD-2-AT: two steps of eps / 2 (alpha=None resolves to eps / 2)."""
    alpha: Optional[float] = None
    steps: int = 2

    name = "pgd2_at"

    def step_size(self) -> float:
        return self.eps / 2 if self.alpha is None else self.alpha
