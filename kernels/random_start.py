"""Random start of an attack with the random numbers drawn inside the kernel.

FGSM-RS (Wong, Rice and Kolter, "Fast is better than free", ICLR 2020) starts from a uniform
point of the eps-ball; Backward Smoothing (Chen et al., AAAI 2022) and Fast-BAT (Zhang et
al., ICML 2022) start from uniform or small Gaussian noise. Reference formula
(fastadv/ops/reference.py, random_start):

    "uniform":  out = x + U(-eps, eps)
    "normal":   out = x + scale * N(0, 1)
    clamp:      out = clip01(out)

The noise is Philox (counter-based), keyed by the seed fastadv.ops drew from the caller's
torch generator, so the draw is reproducible under torch.manual_seed but is a different stream
from torch.rand's. One Philox call gives four 32-bit words, so each program takes its
elements as four contiguous quarters that share one counter per lane: a quarter of the
Philox work of one call per element, and every access still coalesced.
Uniforms keep the top 24 bits of a word, u = k * 2**-24 with k in [0, 2**24), so they are
exact in float32 and U(-eps, eps) = (2u - 1) * eps never reaches +eps. Normals use
Box-Muller on u in (0, 1] (no log 0), two normals per pair of words.
"""
from __future__ import annotations

import triton
import triton.language as tl

from fastadv.kernels import ELEMENTWISE_BLOCK, ELEMENTWISE_WARPS

_SEED_BITS = 63


@triton.jit
def _unit_uniform(word, OPEN_AT_ZERO: tl.constexpr):
    k = (word >> 8).to(tl.float32)
    if OPEN_AT_ZERO:
        k = k + 1.0
    return k * 5.9604644775390625e-08  # 2**-24


@triton.jit
def _noise_pair(word_a, word_b, NORMAL: tl.constexpr):
    if NORMAL:
        radius = tl.sqrt(-2.0 * tl.log(_unit_uniform(word_a, True)))
        angle = 6.283185307179586 * _unit_uniform(word_b, False)
        return radius * tl.cos(angle), radius * tl.sin(angle)
    else:
        return (_unit_uniform(word_a, False) * 2.0 - 1.0,
                _unit_uniform(word_b, False) * 2.0 - 1.0)


@triton.jit
def _perturb_quarter(x_ptr, out_ptr, offs, numel, noise, magnitude, CLAMP: tl.constexpr):
    inside = offs < numel
    y = tl.load(x_ptr + offs, mask=inside).to(tl.float32) + magnitude * noise
    if CLAMP:
        y = tl.minimum(tl.maximum(y, 0.0), 1.0)
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=inside)


@triton.jit(do_not_specialize=["seed"])
def _random_start_kernel(x_ptr, out_ptr, numel, seed, magnitude,
                         NORMAL: tl.constexpr, CLAMP: tl.constexpr, BLOCK: tl.constexpr):
    QUARTER: tl.constexpr = BLOCK // 4
    pid = tl.program_id(0).to(tl.int64)
    lane = tl.arange(0, QUARTER)
    w0, w1, w2, w3 = tl.randint4x(seed, pid * QUARTER + lane)
    n0, n1 = _noise_pair(w0, w1, NORMAL)
    n2, n3 = _noise_pair(w2, w3, NORMAL)
    base = pid * BLOCK + lane
    _perturb_quarter(x_ptr, out_ptr, base, numel, n0, magnitude, CLAMP)
    _perturb_quarter(x_ptr, out_ptr, base + QUARTER, numel, n1, magnitude, CLAMP)
    _perturb_quarter(x_ptr, out_ptr, base + 2 * QUARTER, numel, n2, magnitude, CLAMP)
    _perturb_quarter(x_ptr, out_ptr, base + 3 * QUARTER, numel, n3, magnitude, CLAMP)


def random_start(x, out, *, eps, kind, scale, clamp, seed):
    """Backend contract of fastadv.ops: out = x + noise (then clip01 when ``clamp``)."""
    if kind == "zero":
        # No noise to draw; kept here so the backend serves every kind the public op takes.
        out.copy_(x.clamp(0.0, 1.0) if clamp else x)
        return
    if kind not in ("uniform", "normal"):
        raise ValueError(f"kind must be 'uniform', 'normal' or 'zero', got {kind!r}")
    numel = out.numel()
    if numel == 0:
        return
    magnitude = float(eps) if kind == "uniform" else float(scale)
    _random_start_kernel[(triton.cdiv(numel, ELEMENTWISE_BLOCK),)](
        x, out, numel, int(seed) % (1 << _SEED_BITS), magnitude,
        NORMAL=(kind == "normal"), CLAMP=bool(clamp),
        BLOCK=ELEMENTWISE_BLOCK, num_warps=ELEMENTWISE_WARPS)
