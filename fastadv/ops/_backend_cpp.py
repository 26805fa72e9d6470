"""Registers the C++/OpenMP kernels of ``fastadv._C`` (csrc/cpu_*.cpp) as the "cpp" backend.

The extension is built without torch headers, so these wrappers hand it raw ``data_ptr()``
integers, element counts and scalars. fastadv.ops has already validated the arguments and
given every operand one dense layout (contiguous or channels_last); the checks here
(fastadv/ops/_backend_checks.py, shared with the cuda backend) are the cheap ones that keep a
wrong call from reading or writing out of bounds: CPU device, a supported dtype shared by all
operands, equal sizes and strides, a dense layout.

The OpenMP team size follows ``torch.get_num_threads()`` so ``torch.set_num_threads`` governs
these kernels as it governs torch's own. The cpp kernels for the step ops round exactly like
eager torch (bitwise equal in float32; float16 computed in float and rounded after every
operation the reference rounds). Random starts use a counter-based in-kernel RNG seeded with
:func:`fastadv.ops._dispatch.seed_from`: reproducible for a seed, not torch's stream.
"""
from __future__ import annotations

import torch

from fastadv import _C
from fastadv.ops._backend_checks import BackendChecks
from fastadv.ops._dispatch import seed_from

_checks = BackendChecks("cpp", "cpu", {torch.float32: _C.FLOAT32, torch.float16: _C.FLOAT16},
                        any_dense_layout=True)
DTYPES = _checks.dtypes


def pgd_step(x_adv, grad, x, out, *, alpha, eps, sign):
    names = ("x_adv", "grad", "x", "out")
    code = _checks.flat(names, (x_adv, grad, x, out))
    _checks.same_dtype(names, (x_adv, grad, x, out), x_adv.dtype)
    _C.pgd_step(code, x.numel(), x_adv.data_ptr(), grad.data_ptr(), x.data_ptr(),
                out.data_ptr(), float(alpha), float(eps), bool(sign), torch.get_num_threads())


def pgd_step_with_mask(x_adv, grad, x, out, mask_out, *, alpha, eps, sign, tol):
    names = ("x_adv", "grad", "x", "out")
    code = _checks.flat(names + ("mask_out",), (x_adv, grad, x, out, mask_out))
    _checks.same_dtype(names, (x_adv, grad, x, out), x_adv.dtype)
    _checks.same_dtype(("mask_out",), (mask_out,), torch.bool)
    _C.pgd_step_with_mask(code, x.numel(), x_adv.data_ptr(), grad.data_ptr(), x.data_ptr(),
                          out.data_ptr(), mask_out.data_ptr(), float(alpha), float(eps),
                          bool(sign), float(tol), torch.get_num_threads())


def masked_scale(g, mask, out, *, scale):
    code = _checks.flat(("g", "mask", "out"), (g, mask, out))
    _checks.same_dtype(("out",), (out,), g.dtype)
    _checks.same_dtype(("mask",), (mask,), torch.bool)
    _C.masked_scale(code, g.numel(), g.data_ptr(), mask.data_ptr(), out.data_ptr(),
                    float(scale), torch.get_num_threads())


def random_start(x, out, *, eps, kind, scale, clamp, generator):
    code = _checks.flat(("x", "out"), (x, out))
    _checks.same_dtype(("out",), (out,), x.dtype)
    kind_code = _checks.kind(kind)
    seed = seed_from(generator)
    _C.random_start(code, x.numel(), x.data_ptr(), out.data_ptr(), seed, kind_code,
                    float(eps), float(0.0 if scale is None else scale), bool(clamp),
                    torch.get_num_threads())


def kl_div_rows(logits_q, logits_p):
    code, q, p = _checks.rows(logits_q, logits_p)
    out = torch.empty(q.shape[0], dtype=q.dtype)
    _C.kl_div_rows(code, q.shape[0], q.shape[1], q.data_ptr(), p.data_ptr(), out.data_ptr(),
                   torch.get_num_threads())
    return out


def kl_div_rows_backward(logits_q, logits_p, grad_rows):
    code, q, p, g = _checks.rows_and_grad(logits_q, logits_p, grad_rows)
    grad_q = torch.empty_like(q)
    grad_p = torch.empty_like(p)
    _C.kl_div_rows_backward(code, q.shape[0], q.shape[1], q.data_ptr(), p.data_ptr(),
                            g.data_ptr(), grad_q.data_ptr(), grad_p.data_ptr(),
                            torch.get_num_threads())
    return grad_q, grad_p


_checks.register(pgd_step, pgd_step_with_mask, masked_scale, random_start, kl_div_rows,
                 kl_div_rows_backward)
