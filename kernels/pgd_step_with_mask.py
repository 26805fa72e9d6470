"""Fast-BAT's lower-level step fused with its box-constraint mask H_C.

Zhang et al., "Revisiting and Advancing Fast Adversarial Training Through the Lens of
Bi-Level Optimization" (Fast-BAT, ICML 2022): the linearised lower-level solution delta* is a
projected step, and the implicit gradient needs H_C, the indicator of the coordinates where
no box constraint of C = {d : |d|_inf <= eps, 0 <= x + d <= 1} is active. Reference formula
(fastadv/ops/reference.py, pgd_step_with_mask):

    x_adv' = clip01(clip(x_adv + alpha * s, x - eps, x + eps)),  s = g or sign(g)
    d      = x_adv' - x
    H_C    = [max(-eps, -x) + tol < d < min(eps, 1 - x) - tol]

Both outputs come from one read of x_adv, g, x: the step is pgd_step.py's (step_block and its
scalar rounding, like_torch), with the mask fused after it. Arithmetic is float32 with every
intermediate rounded to the tensor dtype where the reference's tensor arithmetic rounds it
(the identity for float32; see pgd_step.py). The mask is evaluated on the stored x_adv', so
H_C describes the x_adv' actually returned, and in float16 / bfloat16 it equals the
reference's bit for bit: computed from unrounded values instead, a coordinate clipped to
x + eps would often read as free, because the half-precision x + eps is not exactly x + eps.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastadv.kernels import ELEMENTWISE_BLOCK, ELEMENTWISE_WARPS, NO_FP_FUSION
from fastadv.kernels.pgd_step import like_torch, rounded as _rounded, step_block


@triton.jit
def _pgd_step_with_mask_kernel(x_adv_ptr, grad_ptr, x_ptr, out_ptr, mask_ptr, numel,
                          alpha, eps, tol, SIGN: tl.constexpr, BLOCK: tl.constexpr):
    offs, inside, x, y = step_block(x_adv_ptr, grad_ptr, x_ptr, out_ptr, numel, alpha, eps,
                                    SIGN, BLOCK)
    dtype: tl.constexpr = out_ptr.dtype.element_ty
    d = _rounded(y - x, dtype)
    lower = _rounded(_rounded(tl.maximum(-x, -eps), dtype) + tol, dtype)
    upper = _rounded(_rounded(tl.minimum(_rounded(1.0 - x, dtype), eps), dtype) - tol, dtype)
    free = (d > lower) & (d < upper)
    tl.store(mask_ptr + offs, free.to(tl.uint8), mask=inside)


def pgd_step_with_mask(x_adv, grad, x, out, mask_out, *, alpha, eps, sign, tol):
    """Backend contract of fastadv.ops: new x_adv into ``out``, H_C into bool ``mask_out``."""
    numel = out.numel()
    if numel == 0:
        return
    _pgd_step_with_mask_kernel[(triton.cdiv(numel, ELEMENTWISE_BLOCK),)](
        x_adv, grad, x, out, mask_out.view(torch.uint8), numel,
        like_torch("mul", alpha, out), like_torch("add", eps, out), like_torch("add", tol, out),
        SIGN=bool(sign), BLOCK=ELEMENTWISE_BLOCK, num_warps=ELEMENTWISE_WARPS, **NO_FP_FUSION)
