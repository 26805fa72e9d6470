"""The fused ops as torch.library custom ops, so torch.compile traces through them as opaque
nodes (with fake implementations for shape propagation) instead of breaking the graph.

Each op receives the already-resolved backend name and calls that backend's function from
the implementation table. Outputs are allocated here with ``empty_like`` so they keep the
inputs' dense layout (contiguous or channels_last); backends then work on flat storage.
Eager calls of the step ops skip the dispatcher and run the same Python body directly: the
dispatcher costs ~10 us a call, a fifth of a fused step on a 128-image CIFAR batch on CPU.
Under torch.compile the custom op is what gets traced. The fused KL is, in eager mode, an
autograd.Function (a third of the custom op's autograd overhead) whose backward is marked
once_differentiable; under torch.compile, a custom op whose backward is another custom op
without an autograd formula. Either way a double backward through a fused KL raises instead
of returning wrong numbers (the reference KL is plain autograd and twice differentiable).
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from fastadv.ops._dispatch import _TABLE


def _impl(op: str, backend: str):
    return _TABLE[op][backend][0]


def _eager_or_traced(custom_op, eager):
    """Call ``eager`` directly, or ``custom_op`` while torch.compile traces."""
    def call(*args):
        if torch.compiler.is_compiling():
            return custom_op(*args)
        return eager(*args)
    call.__name__ = eager.__name__.replace("_eager", "")
    return call


def pgd_step_eager(x_adv: Tensor, grad: Tensor, x: Tensor, alpha: float, eps: float,
                   sign: bool, backend: str) -> Tensor:
    out = torch.empty_like(x_adv)
    _impl("pgd_step", backend)(x_adv, grad, x, out, alpha=alpha, eps=eps, sign=sign)
    return out


pgd_step_op = torch.library.custom_op("fastadv::pgd_step", pgd_step_eager, mutates_args=())


@pgd_step_op.register_fake
def _(x_adv, grad, x, alpha, eps, sign, backend):
    return torch.empty_like(x_adv)


def pgd_step_inplace_eager(x_adv: Tensor, grad: Tensor, x: Tensor, alpha: float, eps: float,
                           sign: bool, backend: str) -> None:
    _impl("pgd_step", backend)(x_adv, grad, x, x_adv, alpha=alpha, eps=eps, sign=sign)
    # the kernel wrote through a raw pointer: tell autograd and caches that x_adv changed
    torch.autograd.graph.increment_version(x_adv)


pgd_step_inplace_op = torch.library.custom_op("fastadv::pgd_step_", pgd_step_inplace_eager,
                                              mutates_args=("x_adv",))


@pgd_step_inplace_op.register_fake
def _(x_adv, grad, x, alpha, eps, sign, backend):
    return None


def pgd_step_with_mask_eager(x_adv: Tensor, grad: Tensor, x: Tensor, alpha: float, eps: float,
                             sign: bool, tol: float, backend: str) -> Tuple[Tensor, Tensor]:
    out = torch.empty_like(x_adv)
    mask = torch.empty_like(x_adv, dtype=torch.bool)
    _impl("pgd_step_with_mask", backend)(x_adv, grad, x, out, mask, alpha=alpha, eps=eps,
                                         sign=sign, tol=tol)
    return out, mask


pgd_step_with_mask_op = torch.library.custom_op("fastadv::pgd_step_with_mask",
                                                pgd_step_with_mask_eager, mutates_args=())


@pgd_step_with_mask_op.register_fake
def _(x_adv, grad, x, alpha, eps, sign, tol, backend):
    return torch.empty_like(x_adv), torch.empty_like(x_adv, dtype=torch.bool)


def masked_scale_eager(g: Tensor, mask: Tensor, scale: float, backend: str) -> Tensor:
    out = torch.empty_like(g)
    _impl("masked_scale", backend)(g, mask, out, scale=scale)
    return out


masked_scale_op = torch.library.custom_op("fastadv::masked_scale", masked_scale_eager,
                                          mutates_args=())


@masked_scale_op.register_fake
def _(g, mask, scale, backend):
    return torch.empty_like(g)


def random_start_eager(x: Tensor, eps: float, kind: str, scale: float, clamp: bool, seed: int,
                       backend: str) -> Tensor:
    out = torch.empty_like(x)
    # custom ops cannot take a Generator, so the draw is rebuilt from an int; a CPU generator
    # keeps kernel backends (which read a seed from it) free of GPU syncs
    generator = torch.Generator().manual_seed(seed)
    _impl("random_start", backend)(x, out, eps=eps, kind=kind, scale=scale, clamp=clamp,
                                   generator=generator)
    return out


random_start_op = torch.library.custom_op("fastadv::random_start", random_start_eager,
                                          mutates_args=())


@random_start_op.register_fake
def _(x, eps, kind, scale, clamp, seed, backend):
    return torch.empty_like(x)


@torch.library.custom_op("fastadv::kl_div_rows", mutates_args=())
def kl_div_rows_op(logits_q: Tensor, logits_p: Tensor, backend: str) -> Tensor:
    return _impl("kl_div_rows", backend)(logits_q, logits_p)


@kl_div_rows_op.register_fake
def _(logits_q, logits_p, backend):
    return logits_q.new_empty(logits_q.shape[:-1])


def kl_div_rows_backward_eager(logits_q: Tensor, logits_p: Tensor, grad_rows: Tensor,
                               backend: str) -> Tuple[Tensor, Tensor]:
    return _impl("kl_div_rows_backward", backend)(logits_q, logits_p, grad_rows)


kl_div_rows_backward_op = torch.library.custom_op("fastadv::kl_div_rows_backward",
                                                  kl_div_rows_backward_eager, mutates_args=())
kl_div_rows_backward = _eager_or_traced(kl_div_rows_backward_op, kl_div_rows_backward_eager)


@kl_div_rows_backward_op.register_fake
def _(logits_q, logits_p, grad_rows, backend):
    return torch.empty_like(logits_q), torch.empty_like(logits_p)


def _kl_setup_context(ctx, inputs, output):
    logits_q, logits_p, backend = inputs
    ctx.save_for_backward(logits_q, logits_p)
    ctx.backend = backend


def _kl_backward(ctx, grad_rows):
    logits_q, logits_p = ctx.saved_tensors
    need_q, need_p = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if not (need_q or need_p):
        return None, None, None
    grad_q, grad_p = kl_div_rows_backward(logits_q, logits_p, grad_rows.contiguous(),
                                          ctx.backend)
    return (grad_q if need_q else None), (grad_p if need_p else None), None


kl_div_rows_op.register_autograd(_kl_backward, setup_context=_kl_setup_context)


pgd_step = _eager_or_traced(pgd_step_op, pgd_step_eager)
pgd_step_inplace = _eager_or_traced(pgd_step_inplace_op, pgd_step_inplace_eager)
pgd_step_with_mask = _eager_or_traced(pgd_step_with_mask_op, pgd_step_with_mask_eager)
masked_scale = _eager_or_traced(masked_scale_op, masked_scale_eager)
random_start = _eager_or_traced(random_start_op, random_start_eager)


class _KlDivRows(torch.autograd.Function):
    """Eager form of the fastadv::kl_div_rows custom op (same backend calls)."""

    @staticmethod
    def forward(ctx, logits_q, logits_p, backend):
        _kl_setup_context(ctx, (logits_q, logits_p, backend), None)
        return _impl("kl_div_rows", backend)(logits_q, logits_p)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_rows):
        return _kl_backward(ctx, grad_rows)


def _kl_div_rows_eager(logits_q, logits_p, backend):
    return _KlDivRows.apply(logits_q, logits_p, backend)


kl_div_rows = _eager_or_traced(kl_div_rows_op, _kl_div_rows_eager)
