"""TRADES - Zhang, Yu, Jiao, Xing, El Ghaoui, Jordan, "Theoretically principled trade-off
between robustness and accuracy", ICML 2019. The update and its defaults are documented on
:class:`TRADES`; :func:`trades_objective` and :func:`kl_ascent` are shared with the fast
variants (fast_trades.py, backward_smoothing.py)."""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch
import torch.nn.functional as F

from fastadv import ops
from fastadv._checks import check_float
from fastadv.models.mode import bn_mode

from ._base import Method, StepOutput, accuracy, input_grad


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
    """TRADES: clean cross-entropy plus beta times the KL divergence between the clean and
    the adversarial prediction, the adversary maximising that KL with K signed steps.

    Paper: Hongyang Zhang, Yaodong Yu, Jiantao Jiao, Eric P. Xing, Laurent El Ghaoui,
    Michael I. Jordan, "Theoretically principled trade-off between robustness and accuracy",
    ICML 2019, arXiv 1901.08573.
    Official code: https://github.com/yaodongyu/TRADES (trades.py and
    train_trades_cifar10.py: --epsilon 0.031 --step-size 0.007 --num-steps 10 --beta 6.0,
    start x + 0.001 * N(0, I), model.eval() while attacking; checked at commits
    9d308f1cd607 (trades.py) and e20f7b9b99c7 (train_trades_cifar10.py)).

    Update (KL(p || q) = sum over classes of p * (log p - log q); the attack runs in
    ``bn_mode``, the loss in train mode):
        x_adv = x + init_scale * N(0, I)               (not clamped before the first step)
        p_nat = softmax(f(x))                          (computed once: eval mode is deterministic)
        K = steps times:
            x_adv = clip01(clip(x_adv + alpha * sign(grad KL(p_nat || softmax(f(x_adv)))),
                                x - eps, x + eps))
        loss = CE(f(x), y) + beta * KL_sum(softmax(f(x)) || softmax(f(x_adv))) / B
    The KL's clean argument is NOT detached (the gradient flows through both arguments) and
    one clean train-mode forward serves both terms.
    Passes: 1 + K eval forwards, K input-only backwards, 2 train forwards, 1 backward.
    Metrics: ``ce_clean``, ``kl``, ``clean_acc``.

    Attributes:
        eps (float, default 8/255): L-inf radius in pixel units of [0, 1] images (the
            original's --epsilon 0.031, about 7.9/255).
        alpha (float or None, default 2/255): step size in pixel units (the original's
            --step-size 0.007, about 1.8/255); None resolves to eps / 4.
        steps (int, default 10): number of KL-ascent steps K (the code's --num-steps 10).
        beta (float, default 6.0): weight of the KL term, 1/lambda in the paper (the
            paper's CIFAR-10 value and the code's --beta 6.0).
        init (str, default "normal"): the start: "normal" (x + init_scale * N(0, I), as in
            the code), "uniform" (x + U(-eps, eps)) or "zero"; never box-clamped.
        init_scale (float, default 0.001): standard deviation of the "normal" start in pixel
            units (the code's 0.001 * randn); ignored by the other starts.
        bn_mode (str, default "eval"): batch-norm mode while the perturbation is built;
            "eval" as in the code's model.eval() around the attack.
    """
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
