"""The fused ops as torch.library custom ops (fastadv::pgd_step, fastadv::pgd_step_,
fastadv::pgd_step_with_mask, fastadv::masked_scale, fastadv::random_start,
fastadv::kl_div_logits and its fastadv::kl_div_logits_backward), so torch.compile traces
through them as opaque nodes with fake implementations for shape propagation, and their eager
fast path.

Every function here ends with the Implementation that fastadv.ops resolved
(fastadv/ops/_dispatch.py). Eagerly it runs the op's body with that implementation's
function: the custom-op dispatcher costs ~10 us a call, a fifth of a fused step on a
128-image CIFAR batch on CPU. While torch.compile traces, it calls the custom op instead,
which carries the backend's name (a custom op cannot take a function) and runs the same body.
A body allocates the outputs with ``empty_like``, so they keep the inputs' dense layout
(contiguous or channels_last), and calls the backend with the operands' GPU current, since
kernels launch on the current device.

The fused KL is, in eager mode, an autograd.Function (a third of the custom op's autograd
overhead) whose backward is marked once_differentiable; under torch.compile, a custom op
whose backward is another custom op without an autograd formula. Either way a double
backward through a fused KL raises instead of returning wrong numbers (the reference KL,
which fastadv.ops calls without this module, is plain autograd and twice differentiable).
"""
from __future__ import annotations

import functools
from typing import Callable

import torch
from torch.autograd.function import once_differentiable

from fastadv.ops._dispatch import Implementation, implementation


def _on_device(body: Callable, operands: tuple, fn: Callable):
    """``body(*operands, fn)`` with the first operand's GPU current (nothing to do on CPU)."""
    if operands[0].is_cuda:
        with torch.cuda.device(operands[0].device):
            return body(*operands, fn)
    return body(*operands, fn)


def _traceable(name: str, op: str, body: Callable, schema: str, fake: Callable,
               mutates_args=()) -> Callable:
    """``body(*operands, fn)`` as the custom op fastadv::``name`` (whose last argument is
    the name of a backend of table op ``op``), and the function fastadv.ops calls as
    ``call(*operands, implementation)``: the body eagerly, the custom op while tracing."""
    def run(*args):
        return _on_device(body, args[:-1], implementation(op, args[-1]).fn)

    custom = torch.library.custom_op(f"fastadv::{name}", run, mutates_args=mutates_args,
                                     schema=schema)
    custom.register_fake(fake)

    def call(*args):
        impl: Implementation = args[-1]
        if torch.compiler.is_compiling():
            return custom(*args[:-1], impl.backend)
        return _on_device(body, args[:-1], impl.fn)

    call.__name__ = call.__qualname__ = name
    call.custom_op = custom  # for callers that know they are being traced
    return call


# --- the step ops ---------------------------------------------------------------------------

def _pgd_step(x_adv, grad, x, alpha, eps, sign, fn):
    out = torch.empty_like(x_adv)
    fn(x_adv, grad, x, out, alpha=alpha, eps=eps, sign=sign)
    return out


def _pgd_step_(x_adv, grad, x, alpha, eps, sign, fn):
    fn(x_adv, grad, x, x_adv, alpha=alpha, eps=eps, sign=sign)
    # the kernel wrote through a raw pointer: tell autograd and caches that x_adv changed
    torch.autograd.graph.increment_version(x_adv)


def _pgd_step_with_mask(x_adv, grad, x, alpha, eps, sign, tol, fn):
    out = torch.empty_like(x_adv)
    mask = torch.empty_like(x_adv, dtype=torch.bool)
    fn(x_adv, grad, x, out, mask, alpha=alpha, eps=eps, sign=sign, tol=tol)
    return out, mask


def _masked_scale(g, mask, scale, fn):
    out = torch.empty_like(g)
    fn(g, mask, out, scale=scale)
    return out


def _random_start(x, eps, kind, scale, clamp, seed, fn):
    out = torch.empty_like(x)
    fn(x, out, eps=eps, kind=kind, scale=scale, clamp=clamp, seed=seed)
    return out


_STEP_ARGS = "Tensor grad, Tensor x, float alpha, float eps, bool sign"

pgd_step = _traceable(
    "pgd_step", "pgd_step", _pgd_step,
    f"(Tensor x_adv, {_STEP_ARGS}, str backend) -> Tensor",
    lambda x_adv, *_: torch.empty_like(x_adv))
pgd_step_ = _traceable(
    "pgd_step_", "pgd_step", _pgd_step_,
    f"(Tensor(a!) x_adv, {_STEP_ARGS}, str backend) -> ()",
    lambda *_: None, mutates_args=("x_adv",))
pgd_step_with_mask = _traceable(
    "pgd_step_with_mask", "pgd_step_with_mask", _pgd_step_with_mask,
    f"(Tensor x_adv, {_STEP_ARGS}, float tol, str backend) -> (Tensor, Tensor)",
    lambda x_adv, *_: (torch.empty_like(x_adv), torch.empty_like(x_adv, dtype=torch.bool)))
masked_scale = _traceable(
    "masked_scale", "masked_scale", _masked_scale,
    "(Tensor g, Tensor mask, float scale, str backend) -> Tensor",
    lambda g, *_: torch.empty_like(g))
random_start = _traceable(
    "random_start", "random_start", _random_start,
    "(Tensor x, float eps, str kind, float scale, bool clamp, int seed, str backend) -> Tensor",
    lambda x, *_: torch.empty_like(x))


# --- the fused KL ---------------------------------------------------------------------------

def _kl_div_logits(logits_q, logits_p, fn):
    return fn(logits_q, logits_p)


def _kl_div_logits_backward(logits_q, logits_p, grad_rows, fn):
    return fn(logits_q, logits_p, grad_rows)


kl_div_logits_backward = _traceable(
    "kl_div_logits_backward", "kl_div_logits_backward", _kl_div_logits_backward,
    "(Tensor logits_q, Tensor logits_p, Tensor grad_rows, str backend) -> (Tensor, Tensor)",
    lambda logits_q, logits_p, *_: (torch.empty_like(logits_q), torch.empty_like(logits_p)))


def _kl_setup_context(ctx, inputs, output):
    logits_q, logits_p, backend = inputs
    ctx.save_for_backward(logits_q, logits_p)
    ctx.backward_impl = implementation("kl_div_logits_backward", backend)


def _kl_backward(ctx, grad_rows, *, via_custom_op: bool):
    """The fused KL's backward; ``via_custom_op``: called as the custom op's autograd
    formula (the path torch.compile takes, where AOTAutograd traces the backward on fake
    tensors), so the backward custom op is called too. That is said by the caller rather
    than asked of torch.compiler.is_compiling(), which some torch releases (2.11) answer
    False during that trace: the backend would then be handed fake tensors."""
    logits_q, logits_p = ctx.saved_tensors
    need_q, need_p = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if not (need_q or need_p):
        return None, None, None
    if via_custom_op:
        grad_q, grad_p = kl_div_logits_backward.custom_op(
            logits_q, logits_p, grad_rows.contiguous(), ctx.backward_impl.backend)
    else:
        grad_q, grad_p = kl_div_logits_backward(logits_q, logits_p, grad_rows.contiguous(),
                                                ctx.backward_impl)
    return (grad_q if need_q else None), (grad_p if need_p else None), None


@torch.library.custom_op("fastadv::kl_div_logits", mutates_args=())
def _kl_div_logits_op(logits_q: torch.Tensor, logits_p: torch.Tensor,
                      backend: str) -> torch.Tensor:
    return _on_device(_kl_div_logits, (logits_q, logits_p),
                      implementation("kl_div_logits", backend).fn)


@_kl_div_logits_op.register_fake
def _(logits_q, logits_p, backend):
    return logits_q.new_empty(logits_q.shape[:-1])


_kl_div_logits_op.register_autograd(functools.partial(_kl_backward, via_custom_op=True),
                                    setup_context=_kl_setup_context)


class _FusedKlDivLogits(torch.autograd.Function):
    """Eager form of the fastadv::kl_div_logits custom op (the same backend calls)."""

    @staticmethod
    def forward(ctx, logits_q, logits_p, impl: Implementation):
        _kl_setup_context(ctx, (logits_q, logits_p, impl.backend), None)
        return _on_device(_kl_div_logits, (logits_q, logits_p), impl.fn)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_rows):
        return _kl_backward(ctx, grad_rows, via_custom_op=False)


def kl_div_logits(logits_q: torch.Tensor, logits_p: torch.Tensor,
                  impl: Implementation) -> torch.Tensor:
    """Per-row KL of 2-D contiguous logits through a fused backend, differentiable once."""
    if torch.compiler.is_compiling():
        return _kl_div_logits_op(logits_q, logits_p, impl.backend)
    return _FusedKlDivLogits.apply(logits_q, logits_p, impl)
