"""Robust accuracy for model selection during training (Rice et al., ICML 2020): PGD-k with
a uniform start clipped to the box, CE loss, step eps/4, eval mode, on held-out data.

    x_adv <- clip01(clip(x_adv + alpha * sign(grad CE(f(x_adv), y)), x - eps, x + eps))

A point counts as robust only if the model is still right after the last step. The attack
draws its start from its own generator so that validating does not change the training
trajectory (resume and validation frequency leave the weights unchanged).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from fastadv import ops
from fastadv.methods._base import bn_mode


def _pgd(model, x, y, eps, steps, alpha, generator):
    x_adv = ops.random_start(x, eps, generator=generator)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = ops.pgd_step(x_adv.detach(), grad, x, alpha=alpha, eps=eps)
    return x_adv


def clean_and_pgd_accuracy(model, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                           steps: int = 10, alpha: Optional[float] = None,
                           batch_size: int = 512, seed: int = 0) -> Tuple[float, float]:
    """(clean accuracy, PGD-``steps`` robust accuracy) of ``model`` on (x, y), eval mode;
    the model's train/eval flags are restored afterwards."""
    if x.shape[0] == 0:
        raise ValueError("cannot evaluate on an empty set")
    alpha = eps / 4 if alpha is None else alpha
    generator = torch.Generator(device=x.device)
    generator.manual_seed(seed)
    clean = torch.zeros((), device=x.device)
    robust = torch.zeros((), device=x.device)
    with bn_mode(model, "eval"):
        for start in range(0, x.shape[0], batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            with torch.no_grad():
                right = model(xb).argmax(1) == yb
            clean += right.sum()
            if eps > 0 and steps > 0:
                x_adv = _pgd(model, xb, yb, eps, steps, alpha, generator)
                with torch.no_grad():
                    right &= model(x_adv).argmax(1) == yb
            robust += right.sum()
    n = x.shape[0]
    return clean.item() / n, robust.item() / n
