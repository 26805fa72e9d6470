"""Pure-PyTorch reference of every fused op: the specification and the test oracle.

Every other backend must agree with these functions (bitwise for the float32 step ops on the
C++ backend, to rounding elsewhere). Inputs are assumed valid; fastadv.ops validates them.

Formulas (x in [0, 1], perturbation set C = {d : |d|_inf <= eps, 0 <= x + d <= 1}):

- pgd_step:            x_adv' = clip01(clip(x_adv + alpha * s, x - eps, x + eps)),
                       s = sign(g) (sign(0) = 0) or s = g when sign=False.
- pgd_step_with_mask:  the same x_adv', and Fast-BAT's box-constraint mask (Zhang et al.,
                       ICML 2022) H_C = [max(-eps, -x) + tol < d < min(eps, 1 - x) - tol],
                       d = x_adv' - x.
- masked_scale:        g * H * scale  (Fast-BAT's v = H ⊙ g / lambda).
- random_start:        x + U(-eps, eps) ("uniform") or x + scale * N(0, 1) ("normal"),
                       clipped to [0, 1] when clamp.
- kl_div_logits:       KL(P || Q)_b = sum_c P_bc (log P_bc - log Q_bc) per row b (the values
                       of reduction="none"; fastadv.ops.kl_div_logits reduces them),
                       P = softmax(logits_p), Q = softmax(logits_q), accumulated in float32.
- kl_div_logits_backward: dKL/dlogits_q = Q - P;  dKL/dlogits_p = P * (log P - log Q - KL),
                       each scaled by the upstream gradient of its row.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F


def _accum_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def pgd_step(x_adv: torch.Tensor, grad: torch.Tensor, x: torch.Tensor, *, alpha: float,
             eps: float, sign: bool = True) -> torch.Tensor:
    direction = torch.sign(grad) if sign else grad
    stepped = x_adv + alpha * direction
    projected = torch.minimum(torch.maximum(stepped, x - eps), x + eps)
    return projected.clamp_(0.0, 1.0)


def box_mask(x_new: torch.Tensor, x: torch.Tensor, *, eps: float, tol: float) -> torch.Tensor:
    delta = x_new - x
    lower = torch.clamp(-x, min=-eps)
    upper = torch.clamp(1.0 - x, max=eps)
    return (delta > lower + tol) & (delta < upper - tol)


def pgd_step_with_mask(x_adv: torch.Tensor, grad: torch.Tensor, x: torch.Tensor, *,
                       alpha: float, eps: float, sign: bool = False,
                       tol: float = 1e-7) -> Tuple[torch.Tensor, torch.Tensor]:
    x_new = pgd_step(x_adv, grad, x, alpha=alpha, eps=eps, sign=sign)
    return x_new, box_mask(x_new, x, eps=eps, tol=tol)


def masked_scale(g: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
    return g * mask.to(g.dtype) * scale


def random_start(x: torch.Tensor, eps: float, *, kind: str = "uniform",
                 scale: Optional[float] = None, clamp: bool = True,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    if kind == "zero":
        out = x.clone()
    else:
        draw_device = generator.device if generator is not None else x.device
        if kind == "uniform":
            noise = torch.rand(x.shape, generator=generator, device=draw_device,
                               dtype=_accum_dtype(x.dtype))
            noise = (noise * 2.0 - 1.0) * eps
        elif kind == "normal":
            noise = torch.randn(x.shape, generator=generator, device=draw_device,
                                dtype=_accum_dtype(x.dtype)) * scale
        else:
            raise ValueError(f"kind must be 'uniform', 'normal' or 'zero', got {kind!r}")
        out = (x.to(noise.dtype) + noise.to(x.device)).to(x.dtype)
    return out.clamp_(0.0, 1.0) if clamp else out


def kl_div_logits(logits_q: torch.Tensor, logits_p: torch.Tensor) -> torch.Tensor:
    """Per-row KL(softmax(logits_p) || softmax(logits_q)) over the last dimension; twice
    differentiable."""
    acc = _accum_dtype(logits_q.dtype)
    log_q = F.log_softmax(logits_q.to(acc), dim=-1)
    log_p = F.log_softmax(logits_p.to(acc), dim=-1)
    return (log_p.exp() * _log_ratio(log_p, log_q)).sum(dim=-1).to(logits_q.dtype)


def _log_ratio(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """log P - log Q, set to 0 where P = 0 so that 0·log 0 counts as 0 (as in F.kl_div)
    instead of 0·(-inf) = NaN for a target logit of -inf."""
    return torch.where(torch.isneginf(log_p), torch.zeros_like(log_p), log_p - log_q)


def kl_div_logits_backward(logits_q: torch.Tensor, logits_p: torch.Tensor,
                         grad_rows: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    acc = _accum_dtype(logits_q.dtype)
    log_q = F.log_softmax(logits_q.to(acc), dim=-1)
    log_p = F.log_softmax(logits_p.to(acc), dim=-1)
    p = log_p.exp()
    log_ratio = _log_ratio(log_p, log_q)
    kl = (p * log_ratio).sum(dim=-1, keepdim=True)
    g = grad_rows.to(acc).unsqueeze(-1)
    grad_q = g * (log_q.exp() - p)
    grad_p = g * p * (log_ratio - kl)
    return grad_q.to(logits_q.dtype), grad_p.to(logits_p.dtype)
