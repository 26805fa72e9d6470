"""Fused PGD / FGSM step: sign (or raw) step, projection onto the eps-ball, clip to [0, 1].

Projected gradient descent of Madry et al., "Towards Deep Learning Models Resistant to
Adversarial Attacks" (ICLR 2018), the step that FGSM-RS (Wong et al., ICLR 2020) and
Backward Smoothing (Chen et al., AAAI 2022) take once per training batch. Reference formula
(fastadv/ops/reference.py, pgd_step):

    s      = sign(g)            (sign(0) = 0),  or  s = g  when sign=False (Fast-BAT)
    x_adv' = clip01(clip(x_adv + alpha * s, x - eps, x + eps))

One read of x_adv, g and x and one write of x_adv' per element; `out` may alias `x_adv`
(each element is read before it is written by the same program), which gives pgd_step_.

Arithmetic is float32, but every intermediate the reference holds in a tensor
(alpha * s, the sum, x - eps, x + eps) is rounded to the tensor dtype, and the scalars
alpha and eps are rounded to it first exactly where torch's float16 / bfloat16 kernels
round them (asked of torch once, see _launch.like_torch). For float32 all that rounding is
the identity; for half types it makes the step bitwise equal to the reference, and with it
Fast-BAT's mask (see pgd_step_mask.py), which flips on a coordinate exactly on a face when
the step is off by one half-precision ulp. FMA contraction is off for the same reason.
"""
from __future__ import annotations

import triton
import triton.language as tl

from ._launch import (ELEMENTWISE_BLOCK, ELEMENTWISE_WARPS, NO_FP_FUSION, elementwise_grid,
                      like_torch, on_device)


@triton.jit
def rounded(v, DTYPE: tl.constexpr):
    """v rounded to DTYPE and back to float32 (the identity when DTYPE is float32)."""
    return v.to(DTYPE).to(tl.float32)


@triton.jit
def projected_step(x_adv, g, x, alpha, eps, SIGN: tl.constexpr, DTYPE: tl.constexpr):
    """clip01(clip(x_adv + alpha * s, x - eps, x + eps)) on float32 blocks holding DTYPE
    values, each intermediate rounded to DTYPE; returns float32 holding DTYPE values."""
    if SIGN:
        # Spelled with comparisons because sign(0) must be 0, not +-1.
        s = tl.where(g > 0.0, 1.0, tl.where(g < 0.0, -1.0, 0.0))
    else:
        s = g
    y = rounded(x_adv + rounded(alpha * s, DTYPE), DTYPE)
    y = tl.minimum(tl.maximum(y, rounded(x - eps, DTYPE)), rounded(x + eps, DTYPE))
    return tl.minimum(tl.maximum(y, 0.0), 1.0)


@triton.jit
def step_block(x_adv_ptr, grad_ptr, x_ptr, out_ptr, numel, alpha, eps,
               SIGN: tl.constexpr, BLOCK: tl.constexpr):
    """One program's block of the step: reads x_adv, g and x, stores x_adv' into out and
    returns (offs, inside, x, x_adv') for a kernel that fuses more work on the same block
    (pgd_step_mask.py); x and x_adv' are float32 holding the out dtype's values."""
    # int64 offsets: a batch of large images can exceed 2**31 elements.
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < numel
    x_adv = tl.load(x_adv_ptr + offs, mask=inside).to(tl.float32)
    g = tl.load(grad_ptr + offs, mask=inside).to(tl.float32)
    x = tl.load(x_ptr + offs, mask=inside).to(tl.float32)
    dtype: tl.constexpr = out_ptr.dtype.element_ty
    y = projected_step(x_adv, g, x, alpha, eps, SIGN, dtype)
    tl.store(out_ptr + offs, y.to(dtype), mask=inside)
    return offs, inside, x, y


@triton.jit
def _pgd_step_kernel(x_adv_ptr, grad_ptr, x_ptr, out_ptr, numel, alpha, eps,
                     SIGN: tl.constexpr, BLOCK: tl.constexpr):
    step_block(x_adv_ptr, grad_ptr, x_ptr, out_ptr, numel, alpha, eps, SIGN, BLOCK)


def pgd_step(x_adv, grad, x, out, *, alpha, eps, sign):
    """Backend contract of fastadv.ops: writes the new x_adv into ``out`` (flat, dense)."""
    numel = out.numel()
    if numel == 0:
        return
    with on_device(out):
        _pgd_step_kernel[elementwise_grid(numel)](
            x_adv, grad, x, out, numel, like_torch("mul", alpha, out), like_torch("add", eps, out),
            SIGN=bool(sign), BLOCK=ELEMENTWISE_BLOCK, num_warps=ELEMENTWISE_WARPS,
            **NO_FP_FUSION)
