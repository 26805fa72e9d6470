"""Masked scaling v = H ⊙ g · scale in one pass.

Fast-BAT (Zhang et al., ICML 2022) forms the implicit-gradient vector v = H_C ⊙ g_z / lambda
from the box-constraint mask H_C (see pgd_step_with_mask.py). Reference formula
(fastadv/ops/reference.py, masked_scale):

    out = g * H * scale

The product is taken as the reference takes it, (g * H) * scale, so a NaN or inf in g stays
NaN where H is 0 (g * 0) instead of being hidden by a select. Computed in float32, stored in
the tensor dtype.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastadv.kernels import ELEMENTWISE_BLOCK, ELEMENTWISE_WARPS


@triton.jit
def _masked_scale_kernel(g_ptr, mask_ptr, out_ptr, numel, scale, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < numel
    g = tl.load(g_ptr + offs, mask=inside).to(tl.float32)
    h = (tl.load(mask_ptr + offs, mask=inside) != 0).to(tl.float32)
    tl.store(out_ptr + offs, ((g * h) * scale).to(out_ptr.dtype.element_ty), mask=inside)


def masked_scale(g, mask, out, *, scale):
    """Backend contract of fastadv.ops: out = g * mask * scale (mask is a bool tensor)."""
    numel = out.numel()
    if numel == 0:
        return
    if mask.dtype == torch.bool:
        # Viewed as bytes: bool pointers are not handled alike by every Triton backend.
        mask = mask.view(torch.uint8)
    _masked_scale_kernel[(triton.cdiv(numel, ELEMENTWISE_BLOCK),)](
        g, mask, out, numel, float(scale), BLOCK=ELEMENTWISE_BLOCK, num_warps=ELEMENTWISE_WARPS)
