"""PGD with restarts and FGSM, the white-box L-inf attacks of the evaluation protocols.

PGD (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
ICLR 2018): from a uniform start x_0 = clip01(x + U(-eps, eps)), K steps of
    x_{k+1} = clip01(clip(x_k + alpha * sign(grad_x L(f(x_k), y)), x - eps, x + eps)),
with L the cross-entropy (or DLR, Croce & Hein 2020) and alpha = eps/4 by default (the step
of GradAlign's and Fast-BAT's evaluation code). "PGD-K-R" repeats this from R random starts;
a point counts as broken as soon as any iterate of any restart is misclassified, so the
result is the per-point worst case over restarts.

FGSM (Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015):
one step x' = clip01(x + eps * sign(grad_x L(f(x), y))) from the clean point.

Steps and starts go through fastadv.ops (pgd_step, random_start); the run itself lives in
_pgd_shared.py, shared with the transfer attack. Gradients are taken with
torch.autograd.grad w.r.t. the input only, so no parameter gradient is ever accumulated.
Arguments, pixel values included, are checked once per call, never per step. The caller
chooses the model mode (fastadv.evaluate() uses eval mode).
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch

from fastadv import ops
from fastadv._checks import check_bool, check_eps, check_model
from fastadv.attacks._pgd_shared import check_pgd_arguments, pgd_run, unbroken

__all__ = ["pgd", "fgsm"]


def pgd(model: Callable, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int = 20,
        restarts: int = 1, alpha: Optional[float] = None, loss: str = "ce",
        random_start: bool = True, generator: Optional[torch.Generator] = None,
        backend: Optional[str] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """PGD-``steps``-``restarts`` on a batch. Returns ``(x_adv, success)``: ``success[i]``
    is True when some iterate of some restart, its start included, is misclassified
    (``x_adv[i]`` is then that iterate, within the eps-ball and [0, 1]); so with
    ``random_start=False``, or eps = 0 or steps = 0, points misclassified clean count as
    broken. Restarts only attack the points no earlier restart has broken."""
    check_model("model", model)
    eps, alpha, loss_fn = check_pgd_arguments(x, y, eps=eps, steps=steps, restarts=restarts,
                                              alpha=alpha, loss=loss, min_steps=0)
    check_bool("random_start", random_start)
    if eps == 0.0 or steps == 0:
        # no step can move the point: the attack reduces to the clean prediction
        with torch.no_grad():
            success = model(x).argmax(dim=1) != y
        return x.detach().clone(), success
    x = x.detach()
    x_adv = x.clone()
    success = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    for todo in unbroken(success, restarts):
        x_sub, y_sub = x[todo], y[todo]
        start = (ops.random_start(x_sub, eps, generator=generator, backend=backend)
                 if random_start else None)
        adv_sub, hit = pgd_run(model, x_sub, y_sub, eps=eps, steps=steps, alpha=alpha,
                               loss_fn=loss_fn, start=start, backend=backend)
        x_adv[todo] = adv_sub
        success[todo[hit]] = True
    return x_adv, success


def fgsm(model: Callable, x: torch.Tensor, y: torch.Tensor, *, eps: float, loss: str = "ce",
         backend: Optional[str] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """FGSM: one signed step of size eps from the clean point. Returns ``(x_adv, success)``."""
    eps = check_eps(eps)
    # alpha must be > 0; at eps = 0 pgd() takes no step and returns the clean prediction
    return pgd(model, x, y, eps=eps, steps=1, restarts=1, alpha=eps or None, loss=loss,
               random_start=False, backend=backend)
