"""GradAlign (FGSM + gradient alignment) - Andriushchenko, Flammarion, "Understanding and
improving fast adversarial training", NeurIPS 2020. The update and its defaults are
documented on :class:`GradAlign`. The alignment term needs a double backward, so plain
autograd (no fused op) builds g2.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch
import torch.nn.functional as F

from fastadv import ops
from fastadv.models.mode import bn_mode

from ._base import Method, StepOutput, input_grad


def mean_cosine(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """Mean per-sample cosine similarity over samples where both gradients are nonzero."""
    a, b = g1.flatten(1), g2.flatten(1)
    norm_a, norm_b = a.norm(dim=1), b.norm(dim=1)
    keep = (norm_a > 0) & (norm_b > 0)
    # a safe denominator for the dropped rows keeps NaN out of the double backward
    cos = (a * b).sum(1) / torch.where(keep, norm_a * norm_b, torch.ones_like(norm_a))
    count = keep.sum()
    return torch.where(count > 0, (cos * keep).sum() / count.clamp(min=1), cos.new_ones(()))


@dataclasses.dataclass(frozen=True)
class GradAlign(Method):
    """GradAlign: FGSM training plus a regulariser that aligns the input gradient at x with
    the input gradient at a random point of the eps-ball.

    Paper: Maksym Andriushchenko, Nicolas Flammarion, "Understanding and improving fast
    adversarial training", NeurIPS 2020, arXiv 2007.02617.
    Official code: https://github.com/tml-epfl/understanding-fast-adv-training (train.py
    --attack fgsm --attack_init zero, checked at commit 250265e9cc89; utils.get_input_grad
    takes the second gradient at x + U(-eps, eps) without a box clamp, and
    sh/exps_diff_eps_cifar10.sh gives --grad_align_cos_lambda per radius, 0.2 at 8/255 and
    2.0 at 16/255, log-linear in eps, both checked at commit 95c4d861712b).

    Update (P(d) = clamp d to [-eps, eps], then to the pixel box [-x, 1 - x]; the
    perturbation and g2 are built in ``bn_mode``, the loss in train mode):
        g1 = grad_d CE(f(x + d0), y) at the start d0 (zero by default), detached
        d  = P(d0 + alpha * sign(g1))                  (= P(eps * sign(g1)) from zero)
        g2 = grad CE(f(x + eta), y),  eta ~ U(-eps, eps) (not box-clamped), WITH create_graph
        cos = mean over samples whose g1 and g2 are both nonzero of cos(g1_i, g2_i)
        loss = CE(f(x + d), y) + reg * (1 - cos)
    Passes: 3 forwards, 2 input backwards (one with create_graph), then the loop's backward,
    which also runs the double backward through g2. Metrics: ``ce_adv``, ``grad_cos``,
    ``align``.

    Attributes:
        eps (float, default 8/255): L-inf radius in pixel units of [0, 1] images (the code's
            --eps 8).
        alpha (float or None, default None): FGSM step in pixel units; None resolves to eps.
            From the zero start any alpha >= eps gives the same d, so this equals the code's
            --fgsm_alpha 1.25 (a multiple of eps, clipped back to eps).
        reg (float or None, default None): weight lambda of the alignment term
            (dimensionless); None resolves to 0.02 * 10 ** (eps * 255 / 8): 0.2 at 8/255,
            2.0 at 16/255, the code's --grad_align_cos_lambda per radius.
        init (str, default "zero"): the FGSM start d0: "zero" (the code's --attack_init
            zero), "uniform" (FGSM-RS + GradAlign, clamped to the box) or "normal".
        bn_mode (str, default "train"): batch-norm mode while the perturbation is built;
            "train" as in the official code.
    """
    eps: float = 8 / 255
    alpha: Optional[float] = None  # FGSM step; None: eps
    reg: Optional[float] = None  # None: 0.02 * 10 ** (eps * 255 / 8)
    init: str = "zero"  # the FGSM start; "uniform" gives FGSM-RS + GradAlign
    bn_mode: str = "train"

    name = "grad_align"

    def step_size(self) -> float:
        return self.eps if self.alpha is None else self.alpha

    def weight(self) -> float:
        return 0.02 * 10 ** (self.eps * 255 / 8) if self.reg is None else self.reg

    def resolved(self) -> dict:
        return {**super().resolved(), "alpha": self.step_size(), "reg": self.weight()}

    def loss(self, model, x, y) -> StepOutput:
        with bn_mode(model, self.bn_mode):
            x_start = ops.random_start(x, self.eps, kind=self.init).requires_grad_(True)
            g1 = input_grad(F.cross_entropy(model(x_start), y), x_start)
            x_adv = ops.pgd_step(x_start.detach(), g1, x, alpha=self.step_size(), eps=self.eps)
            x_noisy = ops.random_start(x, self.eps, kind="uniform", clamp=False)
            x_noisy.requires_grad_(True)
            g2 = input_grad(F.cross_entropy(model(x_noisy), y), x_noisy, create_graph=True)
        cos = mean_cosine(g1, g2)
        align = self.weight() * (1.0 - cos)
        logits = model(x_adv)
        ce = F.cross_entropy(logits, y)
        return StepOutput(ce + align, logits,
                          {"ce_adv": ce.detach(), "grad_cos": cos.detach(), "align": align.detach()})
