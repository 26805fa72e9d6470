"""Registers the C++/OpenMP kernels of ``fastadv._C`` (csrc/cpu_*.cpp) as the "cpp" backend.

The extension is built without torch headers, so these wrappers hand it raw ``data_ptr()``
integers, element counts and scalars. fastadv.ops has already validated the arguments and
given every operand one dense layout (contiguous or channels_last); the checks here are the
cheap ones that keep a wrong call from reading or writing out of bounds: CPU device, a
supported dtype shared by all operands, equal sizes and strides, a dense layout.

The OpenMP team size follows ``torch.get_num_threads()`` so ``torch.set_num_threads`` governs
these kernels as it governs torch's own. The cpp kernels for the step ops round exactly like
eager torch (bitwise equal in float32; float16 computed in float and rounded after every
operation the reference rounds). Random starts use a counter-based in-kernel RNG seeded with
:func:`fastadv.ops._dispatch.seed_from`: reproducible for a seed, not torch's stream.
"""
from __future__ import annotations

from typing import Tuple

import torch

from fastadv import _C
from fastadv.ops._dispatch import register, seed_from

_CODES = {torch.float32: _C.FLOAT32, torch.float16: _C.FLOAT16}
DTYPES = tuple(_CODES)
_KINDS = {"uniform": 0, "normal": 1}


def _dense(t: torch.Tensor) -> bool:
    if t.is_contiguous():
        return True
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return True
    if t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d):
        return True
    # Any other permutation of a dense block: sorted by stride, each stride must be the
    # product of the sizes of the faster dimensions (size-1 dimensions do not matter).
    expected = 1
    for size, stride in sorted(((s, st) for s, st in zip(t.shape, t.stride()) if s != 1),
                               key=lambda pair: pair[1]):
        if stride != expected:
            return False
        expected *= size
    return True


def _check_flat(names: Tuple[str, ...], tensors: Tuple[torch.Tensor, ...]) -> int:
    """Returns the kernel dtype code of the first tensor after checking that all ``tensors``
    can be treated as flat arrays of one dense layout on the CPU."""
    first = tensors[0]
    for name, t in zip(names, tensors):
        if t.device.type != "cpu":
            raise ValueError(f"cpp backend: {name} is on {t.device}, expected a CPU tensor")
        if t.shape != first.shape or t.stride() != first.stride():
            raise ValueError(f"cpp backend: {name} has shape {tuple(t.shape)} and strides "
                             f"{t.stride()}, expected {tuple(first.shape)} and {first.stride()} "
                             f"like {names[0]}")
    if not _dense(first):
        raise ValueError(f"cpp backend: {names[0]} with strides {first.stride()} is not dense")
    code = _CODES.get(first.dtype)
    if code is None:
        raise TypeError(f"cpp backend: {names[0]} has dtype {first.dtype}; supported: "
                        f"{list(DTYPES)}")
    return code


def _check_dtype(names, tensors, dtype) -> None:
    for name, t in zip(names, tensors):
        if t.dtype != dtype:
            raise TypeError(f"cpp backend: {name} has dtype {t.dtype}, expected {dtype}")


def pgd_step(x_adv, grad, x, out, *, alpha, eps, sign):
    names = ("x_adv", "grad", "x", "out")
    code = _check_flat(names, (x_adv, grad, x, out))
    _check_dtype(names, (x_adv, grad, x, out), x_adv.dtype)
    _C.pgd_step(code, x.numel(), x_adv.data_ptr(), grad.data_ptr(), x.data_ptr(),
                out.data_ptr(), float(alpha), float(eps), bool(sign), torch.get_num_threads())


def pgd_step_with_mask(x_adv, grad, x, out, mask_out, *, alpha, eps, sign, tol):
    names = ("x_adv", "grad", "x", "out")
    code = _check_flat(names + ("mask_out",), (x_adv, grad, x, out, mask_out))
    _check_dtype(names, (x_adv, grad, x, out), x_adv.dtype)
    _check_dtype(("mask_out",), (mask_out,), torch.bool)
    _C.pgd_step_with_mask(code, x.numel(), x_adv.data_ptr(), grad.data_ptr(), x.data_ptr(),
                          out.data_ptr(), mask_out.data_ptr(), float(alpha), float(eps),
                          bool(sign), float(tol), torch.get_num_threads())


def masked_scale(g, mask, out, *, scale):
    code = _check_flat(("g", "mask", "out"), (g, mask, out))
    _check_dtype(("out",), (out,), g.dtype)
    _check_dtype(("mask",), (mask,), torch.bool)
    _C.masked_scale(code, g.numel(), g.data_ptr(), mask.data_ptr(), out.data_ptr(),
                    float(scale), torch.get_num_threads())


def random_start(x, out, *, eps, kind, scale, clamp, generator):
    code = _check_flat(("x", "out"), (x, out))
    _check_dtype(("out",), (out,), x.dtype)
    if kind not in _KINDS:
        raise ValueError(f"cpp backend: kind must be one of {tuple(_KINDS)}, got {kind!r}")
    seed = seed_from(generator)
    _C.random_start(code, x.numel(), x.data_ptr(), out.data_ptr(), seed, _KINDS[kind],
                    float(eps), float(0.0 if scale is None else scale), bool(clamp),
                    torch.get_num_threads())


def _rows(logits_q, logits_p):
    if logits_q.dim() != 2 or logits_p.shape != logits_q.shape:
        raise ValueError(f"cpp backend: logits must be 2-D [B, C] of one shape, got "
                         f"{tuple(logits_q.shape)} and {tuple(logits_p.shape)}")
    for name, t in (("logits_q", logits_q), ("logits_p", logits_p)):
        if t.device.type != "cpu":
            raise ValueError(f"cpp backend: {name} is on {t.device}, expected a CPU tensor")
    code = _CODES.get(logits_q.dtype)
    if code is None:
        raise TypeError(f"cpp backend: logits_q has dtype {logits_q.dtype}; supported: "
                        f"{list(DTYPES)}")
    _check_dtype(("logits_p",), (logits_p,), logits_q.dtype)
    return code, logits_q.contiguous(), logits_p.contiguous()


def kl_div_rows(logits_q, logits_p):
    code, q, p = _rows(logits_q, logits_p)
    out = torch.empty(q.shape[0], dtype=q.dtype)
    _C.kl_div_rows(code, q.shape[0], q.shape[1], q.data_ptr(), p.data_ptr(), out.data_ptr(),
                   torch.get_num_threads())
    return out


def kl_div_rows_backward(logits_q, logits_p, grad_rows):
    code, q, p = _rows(logits_q, logits_p)
    if grad_rows.shape != q.shape[:1]:
        raise ValueError(f"cpp backend: grad_rows has shape {tuple(grad_rows.shape)}, "
                         f"expected ({q.shape[0]},)")
    # float32 whatever the logits' dtype (the reference does not round it either); the
    # upstream gradient of a batchmean/sum is often an expanded scalar (stride 0).
    g = grad_rows.to(device="cpu", dtype=torch.float32).contiguous()
    grad_q = torch.empty_like(q)
    grad_p = torch.empty_like(p)
    _C.kl_div_rows_backward(code, q.shape[0], q.shape[1], q.data_ptr(), p.data_ptr(),
                            g.data_ptr(), grad_q.data_ptr(), grad_p.data_ptr(),
                            torch.get_num_threads())
    return grad_q, grad_p


for _name, _fn in (("pgd_step", pgd_step), ("pgd_step_with_mask", pgd_step_with_mask),
                   ("masked_scale", masked_scale), ("random_start", random_start),
                   ("kl_div_rows", kl_div_rows), ("kl_div_rows_backward", kl_div_rows_backward)):
    register(_name, "cpp", _fn, dtypes=DTYPES, devices=("cpu",))
