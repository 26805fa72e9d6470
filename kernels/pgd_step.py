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
round them (asked of torch once, :func:`like_torch`). For float32 all that rounding is
the identity; for half types it makes the step bitwise equal to the reference, and with it
Fast-BAT's mask (see pgd_step_with_mask.py, which reuses this step), which flips on a
coordinate exactly on a face when the step is off by one half-precision ulp. FMA contraction
is off for the same reason.
"""
from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from fastadv.kernels import ELEMENTWISE_BLOCK, ELEMENTWISE_WARPS, NO_FP_FUSION


@functools.lru_cache(maxsize=256)
def scalar_as(value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to ``dtype`` (exactly representable in float32 for every dtype the
    kernels take)."""
    return float(torch.tensor(value, dtype=dtype).item())


_PROBE_SCALAR = 0.3  # not representable in float16 / bfloat16


@functools.lru_cache(maxsize=None)
def torch_rounds_scalar(op: str, dtype: torch.dtype, device_type: str) -> bool:
    """Whether torch rounds a Python scalar to ``dtype`` before ``tensor <op> scalar``
    ("add" or "mul") on ``device_type``. For half types torch's CPU add does and its CPU
    multiply does not, and that is a property of each kernel, not a rule, so a kernel that
    mirrors the reference bit for bit asks torch once per (op, dtype, device) instead."""
    if dtype == torch.float32:
        return False  # rounding to float32 is what a float32 kernel argument does anyway
    device = torch.device(device_type)
    if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        return op == "add"  # cannot synchronise inside a CUDA graph capture; CPU's answer
    values = (torch.arange(1, 257, dtype=torch.float32) / 7).to(dtype)
    rounded = scalar_as(_PROBE_SCALAR, dtype)
    if op == "add":
        got = values.to(device) + _PROBE_SCALAR
        if_rounded = (values.float() + rounded).to(dtype)
    elif op == "mul":
        got = values.to(device) * _PROBE_SCALAR
        if_rounded = (values.float() * rounded).to(dtype)
    else:
        raise ValueError(f"op must be 'add' or 'mul', got {op!r}")
    return bool(torch.equal(got.cpu(), if_rounded))


def like_torch(op: str, value: float, tensor: torch.Tensor) -> float:
    """The scalar a kernel should use where the reference computes ``tensor <op> value``."""
    value = float(value)
    if torch_rounds_scalar(op, tensor.dtype, tensor.device.type):
        return scalar_as(value, tensor.dtype)
    return value


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
    (pgd_step_with_mask.py); x and x_adv' are float32 holding the out dtype's values."""
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
    _pgd_step_kernel[(triton.cdiv(numel, ELEMENTWISE_BLOCK),)](
        x_adv, grad, x, out, numel, like_torch("mul", alpha, out), like_torch("add", eps, out),
        SIGN=bool(sign), BLOCK=ELEMENTWISE_BLOCK, num_warps=ELEMENTWISE_WARPS, **NO_FP_FUSION)
