"""Gradient alignment, the catastrophic-overfitting indicator.

Andriushchenko & Flammarion, "Understanding and Improving Fast Adversarial Training",
NeurIPS 2020, and Fig. 3 of Zhang et al., "Revisiting and Advancing Fast Adversarial Training
Through the Lens of Bi-Level Optimization" (Fast-BAT), ICML 2022:
    GA = E_(x, y) cos( grad_x CE(f(x), y), grad_x CE(f(x + eta), y) ),  eta ~ U(-eps, eps)^D.
A model that has overfitted catastrophically is locally highly non-linear and its GA drops
towards 0; a robust model keeps it near 1. As in GradAlign, x + eta is not clipped to the
box, and points whose two gradients are not both non-zero are left out of the mean (their
cosine is undefined).
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from fastadv import ops
from fastadv._checks import check_batch, check_bool, check_eps, check_model, check_pixels
from fastadv.models.mode import eval_mode

__all__ = ["gradient_alignment"]


def _input_grad(model: Callable, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), y, reduction="sum")
        grad, = torch.autograd.grad(loss, x)
    return grad.reshape(x.shape[0], -1)


def gradient_alignment(model: Callable, x: torch.Tensor, y: torch.Tensor, eps: float, *,
                       generator: Optional[torch.Generator] = None, in_eval_mode: bool = True,
                       backend: Optional[str] = None) -> float:
    """Mean cosine between the input gradients at x and at x + U(-eps, eps); NaN when no
    point has two non-zero gradients. With ``in_eval_mode=True`` (default) the model runs in eval
    mode and its modes are restored afterwards."""
    check_model("model", model)
    check_batch(x, y)
    check_pixels("x", x)
    eps = check_eps(eps)
    check_bool("in_eval_mode", in_eval_mode)
    if x.shape[0] == 0:
        raise ValueError("x is empty: gradient alignment needs at least one point")
    noisy = ops.random_start(x, eps, clamp=False, generator=generator, backend=backend)
    with (eval_mode(model) if in_eval_mode else contextlib.nullcontext()):
        g_clean = _input_grad(model, x, y)
        g_noisy = _input_grad(model, noisy, y)
    both = (g_clean.norm(dim=1) > 0) & (g_noisy.norm(dim=1) > 0)
    if not bool(both.any()):
        return math.nan
    cos = F.cosine_similarity(g_clean[both].double(), g_noisy[both].double(), dim=1)
    return float(cos.mean())
