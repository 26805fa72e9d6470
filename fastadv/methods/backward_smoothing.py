"""Backward Smoothing - Chen, Cheng, Gan, Gu, Liu, "Efficient robust training via backward
smoothing", AAAI 2022.

Perturbation (BN in eval mode, bn_mode="eval"), no random start:
    l_nat  = f(x)                                  (eval, detached)
    psi    = gamma * U(-1, 1)  of shape [B, classes], added to the LOGITS
    x1 = P(x - alpha * sign(grad_x KL(softmax(l_nat + psi) || softmax(f(x_adv)))) at x_adv = x)
         (eq. 4.4: one signed step DOWN the KL toward the noisy target, the backward-smoothing
          initialisation; the forward at x_adv = x is the clean eval forward, reused)
    x2 = P(x1 + alpha * sign(grad KL(softmax(l_nat) || softmax(f(x1)))))   (eq. 4.5)
    alpha = eps, so x2 - x is in {-eps, 0, +eps} before the box clamp.
Loss (train mode; clean KL argument not detached):
    CE(f(x), y) + beta * KL_sum(softmax(f(x)) || softmax(f(x2))) / B,   beta = 10, gamma = 1
Passes: 2 eval forwards + 2 input-only backwards, 2 train forwards + 1 backward.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from fastadv import ops

from ._base import Method, StepOutput, bn_mode, input_grad
from .trades import trades_objective


@dataclasses.dataclass(frozen=True)
class BackwardSmoothing(Method):
    eps: float = 8 / 255
    alpha: Optional[float] = None  # None: eps
    beta: float = 10.0  # the paper's value (the code's argparse default is 6)
    gamma: float = 1.0
    bn_mode: str = "eval"

    name = "backward_smoothing"

    def step_size(self) -> float:
        return self.eps if self.alpha is None else self.alpha

    def resolved(self) -> dict:
        return {**super().resolved(), "alpha": self.step_size()}

    def perturb(self, model, x):
        alpha = self.step_size()
        with bn_mode(model, self.bn_mode):
            x0 = x.detach().clone().requires_grad_(True)
            logits0 = model(x0)
            l_nat = logits0.detach()
            psi = (torch.rand(l_nat.shape, device=l_nat.device, dtype=l_nat.dtype) * 2 - 1)
            noisy = l_nat + self.gamma * psi
            grad = input_grad(ops.kl_div_logits(logits0, noisy, reduction="sum"), x0)
            # a step DOWN the KL: along -grad
            x1 = ops.pgd_step(x, -grad, x, alpha=alpha, eps=self.eps).requires_grad_(True)
            grad = input_grad(ops.kl_div_logits(model(x1), l_nat, reduction="sum"), x1)
            x2 = ops.pgd_step(x1.detach(), grad, x, alpha=alpha, eps=self.eps)
        return x2

    def loss(self, model, x, y) -> StepOutput:
        return trades_objective(model, x, self.perturb(model, x), y, self.beta)
