"""Robust accuracy for model selection during training (Rice et al., ICML 2020): PGD-k with
a uniform start clipped to the box, CE loss, step eps/4, eval mode, on held-out data, using
the same PGD as fastadv.evaluate (fastadv.attacks.pgd): a point is robust only if no iterate
was misclassified. The attack draws its start from its own generator so that validating
does not change the training trajectory (resume and validation frequency leave the weights
unchanged).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from fastadv.attacks.pgd import pgd
from fastadv.models.mode import bn_mode


def clean_and_pgd_accuracy(model, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                           steps: int = 10, alpha: Optional[float] = None,
                           batch_size: int = 512, seed: int = 0) -> Tuple[float, float]:
    """(clean accuracy, PGD-``steps`` robust accuracy) of ``model`` on (x, y) in eval mode,
    step ``alpha`` (None: pgd's eps/4); the model's train/eval flags are restored afterwards."""
    if x.shape[0] == 0:
        raise ValueError("cannot evaluate on an empty set")
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
                _, broken = pgd(model, xb, yb, eps=eps, steps=steps, alpha=alpha,
                                generator=generator)
                right &= ~broken
            robust += right.sum()
    n = x.shape[0]
    return clean.item() / n, robust.item() / n
