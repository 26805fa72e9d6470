"""Backward Smoothing - Chen, Cheng, Gan, Gu, Liu, "Efficient robust training via backward
smoothing", AAAI 2022. The update and its defaults are documented on
:class:`BackwardSmoothing`."""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from fastadv import ops
from fastadv.models.mode import bn_mode

from ._base import Method, StepOutput, input_grad
from .trades import trades_objective


@dataclasses.dataclass(frozen=True)
class BackwardSmoothing(Method):
    """Backward Smoothing: a TRADES objective whose adversary is one signed step down the KL
    toward a noisy (logit-smoothed) target, then one signed step up the KL.

    Paper: Jinghui Chen, Yu Cheng, Zhe Gan, Quanquan Gu, Jingjing Liu, "Efficient robust
    training via backward smoothing", AAAI 2022, arXiv 2010.01278.
    Official code: https://github.com/jinghuichen/BackwardSmoothing (trades_backward.py and
    train_trades_backward.py: --alpha 0.031 --epsilon 0.031 --gamma 1.0 --num-steps 1,
    argparse --beta 6.0 while the README's example and the paper use 10.0, model.eval()
    while attacking; checked at commits c9c76f7f3f9e (trades_backward.py) and 6ad21f8c3222
    (train_trades_backward.py)).

    Update (P(d) = clamp d to [-eps, eps], then to the pixel box [-x, 1 - x];
    KL(p || q) = sum over classes of p * (log p - log q); the perturbation is built in
    ``bn_mode``, the loss in train mode):
        l_nat = f(x)                                   (detached)
        psi   = gamma * U(-1, 1), shape [B, classes], added to the LOGITS
        x1 = x + P(-alpha * sign(grad_x KL(softmax(l_nat + psi) || softmax(f(x)))))
             (eq. 4.4: one step DOWN the KL toward the noisy target, from x itself, no
              random start; the forward at x is the clean forward, reused)
        x2 = x + P(x1 - x + alpha * sign(grad KL(softmax(l_nat) || softmax(f(x1)))))
             (eq. 4.5: one step UP the KL toward the clean target)
        loss = CE(f(x), y) + beta * KL_sum(softmax(f(x)) || softmax(f(x2))) / B
    With alpha = eps every coordinate of x2 - x is in {-eps, 0, +eps} before the box clamp.
    The clean KL argument is not detached.
    Passes: 2 eval forwards + 2 input-only backwards, 2 train forwards + 1 backward.
    Metrics: ``ce_clean``, ``kl``, ``clean_acc``.

    Attributes:
        eps (float, default 8/255): L-inf radius in pixel units of [0, 1] images (the code's
            --epsilon 0.031, about 7.9/255).
        alpha (float or None, default None): size of both signed steps in pixel units; None
            resolves to eps (the code's --alpha 0.031 = --epsilon).
        beta (float, default 10.0): weight of the KL term; the paper's value and the
            README's example --beta 10.0 (the code's argparse default is 6.0).
        gamma (float, default 1.0): half-width of the uniform noise added to the logits, in
            logit units (the code's --gamma 1.0).
        bn_mode (str, default "eval"): batch-norm mode while the perturbation is built;
            "eval" as in the code's model.eval() around the attack.
    """
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
