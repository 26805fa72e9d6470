"""Fast TRADES (single-step TRADES, and its 2-step variant), the fast TRADES baseline of the
Backward Smoothing paper (Chen et al., AAAI 2022). The update and its defaults are documented
on :class:`FastTRADES`."""
from __future__ import annotations

import dataclasses
from typing import Optional

from fastadv.models.mode import bn_mode

from ._base import StepOutput
from .trades import TRADES, kl_ascent, trades_objective


@dataclasses.dataclass(frozen=True)
class FastTRADES(TRADES):
    """Fast TRADES: TRADES with a uniform random start and one (or two) KL-ascent steps.

    Paper: Jinghui Chen, Yu Cheng, Zhe Gan, Quanquan Gu, Jingjing Liu, "Efficient robust
    training via backward smoothing", AAAI 2022, arXiv 2010.01278 (its fast TRADES baseline;
    TRADES itself is Zhang et al., ICML 2019, arXiv 1901.08573).
    Official code: https://github.com/jinghuichen/BackwardSmoothing (trades_fast.py: start
    x + U(-eps, eps), model.eval() while attacking, defaults step_size 0.031 = epsilon,
    perturb_steps 1, beta 6.0; checked at commit c9c76f7f3f9e).

    Update (the attack runs in ``bn_mode``, the loss in train mode):
        x_adv = x + U(-eps, eps)                      (not box-clamped before the step)
        p_nat = softmax(f(x))                         (computed once)
        K = steps times:
            x_adv = clip01(clip(x_adv + alpha * sign(grad KL(p_nat || softmax(f(x_adv)))),
                                x - eps, x + eps))
        loss = CE(f(x), y) + beta * KL_sum(softmax(f(x)) || softmax(f(x_adv))) / B
    (clean KL argument not detached, as in TRADES).
    Passes (K = 1): 2 eval forwards, 1 input-only backward, 2 train forwards, 1 backward.
    Metrics: ``ce_clean``, ``kl``, ``clean_acc``.

    Attributes:
        eps (float, default 8/255): L-inf radius in pixel units of [0, 1] images (the
            code's epsilon 0.031, about 7.9/255).
        alpha (float or None, default None): step size in pixel units; None resolves to eps
            for one step (the code's step_size = epsilon; the paper's tables use 6/255) and
            to 0.625 * eps for more steps (5/255 at 8/255, the paper's 2-step setting).
        steps (int, default 1): number of KL-ascent steps K (the code's perturb_steps 1;
            2 gives the 2-step variant).
        beta (float, default 6.0): weight of the KL term (the code's beta 6.0).
        init (str, default "uniform"): the start: "uniform" (x + U(-eps, eps), as in the
            code), "normal" (x + init_scale * N(0, I)) or "zero"; never box-clamped.
        init_scale (float, default 0.001): standard deviation of the "normal" start in pixel
            units (TRADES' code's 0.001 * randn); ignored by the default "uniform" start.
        bn_mode (str, default "eval"): batch-norm mode while the perturbation is built;
            "eval" as in the code's model.eval() around the attack.
    """
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
