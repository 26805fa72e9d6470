"""Row-wise KL divergence between two softmaxes, value and gradient, one pass over the rows.

The perturbation loss of TRADES (Zhang et al., ICML 2019) and Backward Smoothing (Chen et
al., "Efficient Robust Training via Backward Smoothing", AAAI 2022), whose target is the
noisy softmax(logits + gamma * U(-1, 1)). Reference formulas (fastadv/ops/reference.py,
kl_div_logits and kl_div_logits_backward), P = softmax(logits_p), Q = softmax(logits_q):

    log P = p - lse(p),  log Q = q - lse(q)
    KL_b  = sum_c P_bc (log P_bc - log Q_bc)                 accumulated in float32
    dKL_b/dq = g_b (Q - P)
    dKL_b/dp = g_b P (log P - log Q - KL_b)                  KL_b recomputed in the kernel

A program owns ROWS rows. When a row fits in one BLOCK_C tile (C up to a few thousand) it
is read once and everything stays in registers; a wider row is walked in BLOCK_C chunks,
first for an online log-sum-exp, then for the sum (and, backward, for the writes).
Padding columns load as -inf, so they vanish from max and exp, and every product over them
is selected away before summing: -inf - -inf would be NaN. Rows past the batch are clamped
onto the last row for loading (no NaN, no out-of-bounds read) and never stored.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastadv.kernels import INTERPRETED

# A tile holds ROWS x BLOCK_C logits; a row wider than MAX_BLOCK_C is walked in chunks of
# MAX_BLOCK_C (online log-sum-exp) instead of living in registers whole.
ROW_TILE = 16384 if INTERPRETED else 2048
MAX_BLOCK_C = 16384 if INTERPRETED else 4096
MAX_ROWS_PER_PROGRAM = 4096 if INTERPRETED else 16


def row_tiling(rows: int, cols: int):
    """(ROWS, BLOCK_C, SINGLE_CHUNK, num_warps) for a row-wise kernel over [rows, cols]."""
    block_c = max(16, triton.next_power_of_2(cols))
    single = block_c <= MAX_BLOCK_C
    if not single:
        block_c = MAX_BLOCK_C
    per_program = max(1, min(ROW_TILE // block_c, MAX_ROWS_PER_PROGRAM,
                             triton.next_power_of_2(rows)))
    warps = 4 if per_program * block_c <= 2048 else 8
    return per_program, block_c, single, warps


@triton.jit
def _tile_lse(v):
    """log-sum-exp along axis 1 of a float32 tile whose padding is -inf."""
    top = tl.max(v, axis=1)
    return top + tl.log(tl.sum(tl.exp(v - top[:, None]), axis=1))


@triton.jit
def _chunked_lse(ptr, row_offs, C, ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    top = tl.full([ROWS], float("-inf"), tl.float32)
    total = tl.zeros([ROWS], tl.float32)
    for start in range(0, C, BLOCK_C):
        cols = start + tl.arange(0, BLOCK_C)
        v = tl.load(ptr + row_offs[:, None] + cols[None, :], mask=(cols < C)[None, :],
                    other=float("-inf")).to(tl.float32)
        new_top = tl.maximum(top, tl.max(v, axis=1))
        total = total * tl.exp(top - new_top) + tl.sum(tl.exp(v - new_top[:, None]), axis=1)
        top = new_top
    return top + tl.log(total)


@triton.jit
def _load_tile(ptr, row_offs, cols, C):
    return tl.load(ptr + row_offs[:, None] + cols[None, :], mask=(cols < C)[None, :],
                   other=float("-inf")).to(tl.float32)


@triton.jit
def _kl_terms(q, p, lse_q, lse_p, cols, C):
    """(P, log P - log Q, P * (log P - log Q) with padding zeroed) for one tile."""
    # Padding and classes the target gives probability 0 (logit -inf) contribute 0·log 0 = 0;
    # they are made finite first, since -inf - -inf or 0·(-inf) would give NaN below.
    live = (cols < C)[None, :] & (p > float("-inf"))
    log_p = tl.where(live, p, 0.0) - lse_p[:, None]
    log_ratio = tl.where(live, log_p - (tl.where(live, q, 0.0) - lse_q[:, None]), 0.0)
    prob_p = tl.where(live, tl.exp(log_p), 0.0)
    terms = prob_p * log_ratio
    return prob_p, log_ratio, terms


@triton.jit
def _rows_of_program(B, stride_q, stride_p, ROWS: tl.constexpr):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    valid = rows < B
    safe = tl.minimum(rows, B - 1).to(tl.int64)
    return safe, valid, safe * stride_q, safe * stride_p


@triton.jit
def _load_pair(q_ptr, p_ptr, q_offs, p_offs, cols, C):
    return _load_tile(q_ptr, q_offs, cols, C), _load_tile(p_ptr, p_offs, cols, C)


@triton.jit
def _single_tile(q_ptr, p_ptr, q_offs, p_offs, C, BLOCK_C: tl.constexpr):
    """Rows that fit one tile, read once: (cols, q, lse_q, P, log P - log Q, KL)."""
    cols = tl.arange(0, BLOCK_C)
    q, p = _load_pair(q_ptr, p_ptr, q_offs, p_offs, cols, C)
    lse_q = _tile_lse(q)
    prob_p, log_ratio, terms = _kl_terms(q, p, lse_q, _tile_lse(p), cols, C)
    return cols, q, lse_q, prob_p, log_ratio, tl.sum(terms, axis=1)


@triton.jit
def _chunked_kl(q_ptr, p_ptr, q_offs, p_offs, C, ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    """Rows wider than a tile, walked in BLOCK_C chunks: (lse_q, lse_p, KL)."""
    lse_q = _chunked_lse(q_ptr, q_offs, C, ROWS, BLOCK_C)
    lse_p = _chunked_lse(p_ptr, p_offs, C, ROWS, BLOCK_C)
    kl = tl.zeros([ROWS], tl.float32)
    for start in range(0, C, BLOCK_C):
        cols = start + tl.arange(0, BLOCK_C)
        q, p = _load_pair(q_ptr, p_ptr, q_offs, p_offs, cols, C)
        _, _, terms = _kl_terms(q, p, lse_q, lse_p, cols, C)
        kl += tl.sum(terms, axis=1)
    return lse_q, lse_p, kl


@triton.jit
def _kl_rows_kernel(q_ptr, p_ptr, kl_ptr, B, C, stride_q, stride_p,
                    ROWS: tl.constexpr, BLOCK_C: tl.constexpr, SINGLE: tl.constexpr):
    rows, valid, q_offs, p_offs = _rows_of_program(B, stride_q, stride_p, ROWS)
    if SINGLE:
        _, _, _, _, _, kl = _single_tile(q_ptr, p_ptr, q_offs, p_offs, C, BLOCK_C)
    else:
        _, _, kl = _chunked_kl(q_ptr, p_ptr, q_offs, p_offs, C, ROWS, BLOCK_C)
    tl.store(kl_ptr + rows, kl.to(kl_ptr.dtype.element_ty), mask=valid)


@triton.jit
def _store_grads(gq_ptr, gp_ptr, q_offs, p_offs, valid, cols, C, q, lse_q, prob_p,
                 log_ratio, kl, g):
    prob_q = tl.exp(q - lse_q[:, None])
    grad_q = g[:, None] * (prob_q - prob_p)
    grad_p = g[:, None] * prob_p * (log_ratio - kl[:, None])
    where = valid[:, None] & (cols < C)[None, :]
    tl.store(gq_ptr + q_offs[:, None] + cols[None, :],
             grad_q.to(gq_ptr.dtype.element_ty), mask=where)
    tl.store(gp_ptr + p_offs[:, None] + cols[None, :],
             grad_p.to(gp_ptr.dtype.element_ty), mask=where)


@triton.jit
def _kl_rows_backward_kernel(q_ptr, p_ptr, g_ptr, gq_ptr, gp_ptr, B, C, stride_q, stride_p,
                             ROWS: tl.constexpr, BLOCK_C: tl.constexpr,
                             SINGLE: tl.constexpr):
    # The gradients are allocated contiguous like their logits, so they share the strides.
    rows, valid, q_offs, p_offs = _rows_of_program(B, stride_q, stride_p, ROWS)
    g = tl.load(g_ptr + rows).to(tl.float32)
    if SINGLE:
        cols, q, lse_q, prob_p, log_ratio, kl = _single_tile(q_ptr, p_ptr, q_offs, p_offs, C,
                                                             BLOCK_C)
        _store_grads(gq_ptr, gp_ptr, q_offs, p_offs, valid, cols, C, q, lse_q, prob_p,
                     log_ratio, kl, g)
    else:
        # KL_b is needed by every column's grad_p, so a first pass finishes it.
        lse_q, lse_p, kl = _chunked_kl(q_ptr, p_ptr, q_offs, p_offs, C, ROWS, BLOCK_C)
        for start in range(0, C, BLOCK_C):
            cols = start + tl.arange(0, BLOCK_C)
            q, p = _load_pair(q_ptr, p_ptr, q_offs, p_offs, cols, C)
            prob_p, log_ratio, _ = _kl_terms(q, p, lse_q, lse_p, cols, C)
            _store_grads(gq_ptr, gp_ptr, q_offs, p_offs, valid, cols, C, q, lse_q, prob_p,
                         log_ratio, kl, g)


def _contiguous_rows(t):
    return t if t.stride(-1) == 1 else t.contiguous()


def kl_div_logits(logits_q, logits_p):
    """Backend contract of fastadv.ops: per-row KL(softmax(p) || softmax(q)), shape [B]."""
    logits_q, logits_p = _contiguous_rows(logits_q), _contiguous_rows(logits_p)
    rows, cols = logits_q.shape
    kl = torch.empty(rows, dtype=logits_q.dtype, device=logits_q.device)
    if rows == 0:
        return kl
    if cols == 0:
        return kl.zero_()
    per_program, block_c, single, warps = row_tiling(rows, cols)
    _kl_rows_kernel[(triton.cdiv(rows, per_program),)](
        logits_q, logits_p, kl, rows, cols, logits_q.stride(0), logits_p.stride(0),
        ROWS=per_program, BLOCK_C=block_c, SINGLE=single, num_warps=warps)
    return kl


def kl_div_logits_backward(logits_q, logits_p, grad_rows):
    """Backend contract of fastadv.ops: (g_b (Q - P), g_b P (log P - log Q - KL_b))."""
    logits_q, logits_p = logits_q.contiguous(), logits_p.contiguous()
    grad_rows = grad_rows.contiguous()
    rows, cols = logits_q.shape
    grad_q = torch.empty_like(logits_q)
    grad_p = torch.empty_like(logits_p)
    if rows == 0 or cols == 0:
        return grad_q, grad_p
    per_program, block_c, single, warps = row_tiling(rows, cols)
    _kl_rows_backward_kernel[(triton.cdiv(rows, per_program),)](
        logits_q, logits_p, grad_rows, grad_q, grad_p, rows, cols,
        logits_q.stride(0), logits_p.stride(0),
        ROWS=per_program, BLOCK_C=block_c, SINGLE=single, num_warps=warps)
    return grad_q, grad_p
