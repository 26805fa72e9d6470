"""TRADES - Zhang, Yu, Jiao, Xing, El Ghaoui, Jordan, "Theoretically principled trade-off
between robustness and accuracy", ICML 2019.

Perturbation (BN in eval mode, bn_mode="eval"):
    x_adv = x + 0.001 * N(0, I)                            (not clamped before the first step)
    l_nat = f(x)                                           (computed once: eval mode is deterministic)
    K = 10 times: x_adv = clip01(clip(x_adv + alpha * sign(grad KL(softmax(l_nat) || softmax(f(x_adv)))),
                                      x - eps, x + eps)),   alpha = 2/255
Loss (train mode; the KL's clean argument is NOT detached; one clean forward serves both terms):
    CE(f(x), y) + beta * KL_sum(softmax(f(x)) || softmax(f(x_adv))) / B,   beta = 6
Passes: 1 + K eval forwards, K input-only backwards, 2 train forwards, 1 backward.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch
import torch.nn.functional as F

from fastadv import ops

from ._base import Method, StepOutput, accuracy, bn_mode, input_grad
from fastadv._checks import check_float


def trades_objective(model, x, x_adv, y, beta):
    """CE(f(x), y) + beta * KL(softmax(f(x)) || softmax(f(x_adv))) batchmean, train-mode
    forwards, gradient through both KL arguments (shared by TRADES and its fast variants)."""
    logits_nat = model(x)
    logits_adv = model(x_adv)
    ce = F.cross_entropy(logits_nat, y)
    kl = ops.kl_div_logits(logits_adv, logits_nat, reduction="batchmean")
    loss = ce + beta * kl
    metrics = {"ce_clean": ce.detach(), "kl": kl.detach(),
               "clean_acc": accuracy(logits_nat, y)}
    return StepOutput(loss, logits_adv, metrics)


def kl_ascent(model, x, x_adv, steps, alpha, eps):
    """``steps`` signed ascent steps on KL(softmax(f(x)) || softmax(f(x_adv))) from x_adv,
    in the caller's BN mode; the clean target is computed once, without a graph."""
    with torch.no_grad():
        target = model(x)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        kl = ops.kl_div_logits(model(x_adv), target, reduction="sum")
        grad = input_grad(kl, x_adv)
        x_adv = ops.pgd_step(x_adv.detach(), grad, x, alpha=alpha, eps=eps)
    return x_adv.detach()


@dataclasses.dataclass(frozen=True)
class TRADES(Method):
    eps: float = 8 / 255  # the original's 0.031
    alpha: Optional[float] = 2 / 255  # the original's 0.007; None: eps / 4
    steps: int = 10
    beta: float = 6.0
    init: str = "normal"
    init_scale: float = 0.001  # std of the "normal" start
    bn_mode: str = "eval"

    name = "trades"

    def __post_init__(self):
        super().__post_init__()
        check_float("init_scale", self.init_scale, minimum=0.0)

    def step_size(self) -> float:
        return self.eps / 4 if self.alpha is None else self.alpha

    def resolved(self) -> dict:
        return {**super().resolved(), "alpha": self.step_size()}

    def start(self, x):
        scale = self.init_scale if self.init == "normal" else None
        return ops.random_start(x, self.eps, kind=self.init, scale=scale, clamp=False)

    def loss(self, model, x, y) -> StepOutput:
        with bn_mode(model, self.bn_mode):
            x_adv = kl_ascent(model, x, self.start(x), self.steps, self.step_size(), self.eps)
        return trades_objective(model, x, x_adv, y, self.beta)
