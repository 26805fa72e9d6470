"""Fast AT (FGSM with a random start) - Wong, Rice, Kolter, "Fast is better than free:
revisiting adversarial training", ICLR 2020. The update and its defaults are documented on
:class:`FastAT`."""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch.nn.functional as F

from fastadv import ops
from fastadv.models.mode import bn_mode

from ._base import Method, StepOutput, input_grad


@dataclasses.dataclass(frozen=True)
class FastAT(Method):
    """Fast AT (FGSM-RS): one FGSM step from a uniform random start.

    Paper: Eric Wong, Leslie Rice, J. Zico Kolter, "Fast is better than free: Revisiting
    adversarial training", ICLR 2020, arXiv 2001.03994.
    Official code: https://github.com/locuslab/fast_adversarial (CIFAR10/train_fgsm.py,
    defaults --epsilon 8 --alpha 10 --delta-init random; checked at commit 1d94c4ece1a5).

    Update (P(d) = clamp d to [-eps, eps], then to the pixel box [-x, 1 - x]; the attack
    runs in ``bn_mode``, the loss in train mode):
        d0 = P(U(-eps, eps))                       (random start, clamped to the box)
        g  = grad_d CE(f(x + d0), y)               (input gradient only)
        d  = P(d0 + alpha * sign(g))
        loss = CE(f(x + d), y)
    Passes: 2 forwards, 2 backwards (the first one input-only). Metrics: ``ce_adv``.
    The official code's catastrophic-overfitting early stop (PGD-5 on one training batch each
    epoch) is not a field: the training loop runs it, on by default for this method
    (``guard_by_default``).

    Attributes:
        eps (float, default 8/255): L-inf radius in pixel units of [0, 1] images (the code's
            --epsilon 8, the paper's CIFAR-10 radius).
        alpha (float or None, default None): FGSM step in pixel units; None resolves to
            1.25 * eps, i.e. 10/255 at eps 8/255 (the paper's alpha = 1.25 eps, the code's
            --alpha 10).
        init (str, default "uniform"): the start: "uniform" (U(-eps, eps) clamped to the
            box, the code's --delta-init random), "zero" (plain FGSM) or "normal".
        bn_mode (str, default "train"): batch-norm mode while the perturbation is built;
            "train" as in the official code, which never switches the model to eval.
    """
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
