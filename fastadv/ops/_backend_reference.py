"""Registers the pure-PyTorch reference (fastadv.ops.reference) as the "reference" backend.

It runs on every device and dtype torch supports, so "auto" can always fall back to it.
"""
from __future__ import annotations

import torch

from fastadv.ops import reference
from fastadv.ops._dispatch import register

_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_DEVICES = ("cpu", "cuda", "mps", "xpu", "meta")


def _pgd_step(x_adv, grad, x, out, *, alpha, eps, sign):
    out.copy_(reference.pgd_step(x_adv, grad, x, alpha=alpha, eps=eps, sign=sign))


def _pgd_step_with_mask(x_adv, grad, x, out, mask_out, *, alpha, eps, sign, tol):
    x_new, mask = reference.pgd_step_with_mask(x_adv, grad, x, alpha=alpha, eps=eps,
                                               sign=sign, tol=tol)
    out.copy_(x_new)
    mask_out.copy_(mask)


def _masked_scale(g, mask, out, *, scale):
    out.copy_(reference.masked_scale(g, mask, scale))


def _random_start(x, out, *, eps, kind, scale, clamp, generator):
    out.copy_(reference.random_start(x, eps, kind=kind, scale=scale, clamp=clamp,
                                     generator=generator))


for _name, _fn in (("pgd_step", _pgd_step), ("pgd_step_with_mask", _pgd_step_with_mask),
                   ("masked_scale", _masked_scale), ("random_start", _random_start),
                   ("kl_div_rows", reference.kl_div_rows),
                   ("kl_div_rows_backward", reference.kl_div_rows_backward)):
    register(_name, "reference", _fn, dtypes=_DTYPES, devices=_DEVICES)
