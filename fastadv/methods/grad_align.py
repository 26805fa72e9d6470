"""GradAlign (FGSM + gradient alignment) - Andriushchenko, Flammarion, "Understanding and
improving fast adversarial training", NeurIPS 2020.

BN mode train. From a zero start, FGSM with step eps:
    g1 = grad_x CE(f(x), y)                                  (detached)
    d  = P(eps * sign(g1))
    g2 = grad CE(f(x + eta), y),  eta ~ U(-eps, eps) (not box-clamped), WITH create_graph
    reg_term = reg * (1 - mean_i cos(g1_i, g2_i))   over samples whose g1 and g2 are nonzero
Loss: CE(f(x + d), y) + reg_term, reg = 0.02 * 10 ** (eps * 255 / 8)  (0.2 at 8/255, 2 at 16/255).
The alignment term needs a double backward, so plain autograd (no fused op) builds g2.
Passes: 3 forwards, 2 input backwards (one with create_graph), then the loop's backward
(which also runs the double backward through g2).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch
import torch.nn.functional as F

from fastadv import ops

from ._base import Method, StepOutput, bn_mode, input_grad


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
