"""Registers the hand-written CUDA kernels of ``fastadv._C_cuda`` (csrc/cuda_*.cu) as the
"cuda" backend.

The module is built by nvcc at install time when nvcc is found (setup.py) and links the CUDA
runtime statically, without torch headers: these wrappers hand it device ``data_ptr()``
integers, counts, scalars and torch's current stream, so kernels are ordered with the
surrounding torch work. It registers only when torch sees a GPU and the module's own runtime
can use it (``_C_cuda.probe()``: e.g. a driver older than the toolkit fails there), so an
import failure here just leaves "cuda" out of the available backends.

dtypes: float32, float16, bfloat16. Step ops compute in float and round every intermediate the
reference rounds; random starts use the same counter-based RNG as the cpp backend (the same
uniform draws for the same seed).
"""
from __future__ import annotations

import torch

if not torch.cuda.is_available():
    raise ImportError("the cuda backend needs a CUDA GPU visible to torch")

from fastadv import _C_cuda  # noqa: E402  (only worth importing with a GPU)
from fastadv.ops._dispatch import register, seed_from  # noqa: E402

_why = _C_cuda.probe()
if _why:
    raise ImportError(f"fastadv._C_cuda cannot use the GPU: {_why}")

_CODES = {torch.float32: _C_cuda.FLOAT32, torch.float16: _C_cuda.FLOAT16,
          torch.bfloat16: _C_cuda.BFLOAT16}
DTYPES = tuple(_CODES)
_KINDS = {"uniform": 0, "normal": 1}


def _stream(t: torch.Tensor) -> int:
    return torch.cuda.current_stream(t.device).cuda_stream


def _check(names, tensors, dtype=None) -> int:
    first = tensors[0]
    for name, t in zip(names, tensors):
        if t.device != first.device or t.device.type != "cuda":
            raise ValueError(f"cuda backend: {name} is on {t.device}, expected {first.device} "
                             f"(a CUDA device)")
        if t.shape != first.shape or t.stride() != first.stride():
            raise ValueError(f"cuda backend: {name} has shape {tuple(t.shape)} and strides "
                             f"{t.stride()}, expected those of {names[0]}")
    if not (first.is_contiguous() or (first.dim() == 4 and
                                      first.is_contiguous(memory_format=torch.channels_last))):
        raise ValueError(f"cuda backend: {names[0]} with strides {first.stride()} is neither "
                         f"contiguous nor channels_last")
    dtype = first.dtype if dtype is None else dtype
    code = _CODES.get(dtype)
    if code is None:
        raise TypeError(f"cuda backend: dtype {dtype} is not supported; supported: "
                        f"{list(DTYPES)}")
    return code


def _same_dtype(names, tensors, dtype) -> None:
    for name, t in zip(names, tensors):
        if t.dtype != dtype:
            raise TypeError(f"cuda backend: {name} has dtype {t.dtype}, expected {dtype}")


def pgd_step(x_adv, grad, x, out, *, alpha, eps, sign):
    names = ("x_adv", "grad", "x", "out")
    code = _check(names, (x_adv, grad, x, out))
    _same_dtype(names, (x_adv, grad, x, out), x_adv.dtype)
    with torch.cuda.device(x.device):
        _C_cuda.pgd_step(code, x.numel(), x_adv.data_ptr(), grad.data_ptr(), x.data_ptr(),
                         out.data_ptr(), float(alpha), float(eps), bool(sign), _stream(x))


def pgd_step_with_mask(x_adv, grad, x, out, mask_out, *, alpha, eps, sign, tol):
    names = ("x_adv", "grad", "x", "out")
    code = _check(names + ("mask_out",), (x_adv, grad, x, out, mask_out))
    _same_dtype(names, (x_adv, grad, x, out), x_adv.dtype)
    _same_dtype(("mask_out",), (mask_out,), torch.bool)
    with torch.cuda.device(x.device):
        _C_cuda.pgd_step_with_mask(code, x.numel(), x_adv.data_ptr(), grad.data_ptr(),
                                   x.data_ptr(), out.data_ptr(), mask_out.data_ptr(),
                                   float(alpha), float(eps), bool(sign), float(tol), _stream(x))


def masked_scale(g, mask, out, *, scale):
    code = _check(("g", "mask", "out"), (g, mask, out), dtype=g.dtype)
    _same_dtype(("out",), (out,), g.dtype)
    _same_dtype(("mask",), (mask,), torch.bool)
    with torch.cuda.device(g.device):
        _C_cuda.masked_scale(code, g.numel(), g.data_ptr(), mask.data_ptr(), out.data_ptr(),
                             float(scale), _stream(g))


def random_start(x, out, *, eps, kind, scale, clamp, generator):
    code = _check(("x", "out"), (x, out))
    _same_dtype(("out",), (out,), x.dtype)
    if kind not in _KINDS:
        raise ValueError(f"cuda backend: kind must be one of {tuple(_KINDS)}, got {kind!r}")
    seed = seed_from(generator)
    with torch.cuda.device(x.device):
        _C_cuda.random_start(code, x.numel(), x.data_ptr(), out.data_ptr(), seed, _KINDS[kind],
                             float(eps), float(0.0 if scale is None else scale), bool(clamp),
                             _stream(x))


def _rows(logits_q, logits_p):
    if logits_q.dim() != 2 or logits_p.shape != logits_q.shape:
        raise ValueError(f"cuda backend: logits must be 2-D [B, C] of one shape, got "
                         f"{tuple(logits_q.shape)} and {tuple(logits_p.shape)}")
    q, p = logits_q.contiguous(), logits_p.contiguous()
    code = _check(("logits_q", "logits_p"), (q, p))
    _same_dtype(("logits_p",), (p,), q.dtype)
    return code, q, p


def kl_div_rows(logits_q, logits_p):
    code, q, p = _rows(logits_q, logits_p)
    out = torch.empty(q.shape[0], dtype=q.dtype, device=q.device)
    with torch.cuda.device(q.device):
        _C_cuda.kl_div_rows(code, q.shape[0], q.shape[1], q.data_ptr(), p.data_ptr(),
                            out.data_ptr(), _stream(q))
    return out


def kl_div_rows_backward(logits_q, logits_p, grad_rows):
    code, q, p = _rows(logits_q, logits_p)
    if grad_rows.shape != q.shape[:1]:
        raise ValueError(f"cuda backend: grad_rows has shape {tuple(grad_rows.shape)}, "
                         f"expected ({q.shape[0]},)")
    g = grad_rows.to(device=q.device, dtype=torch.float32).contiguous()
    grad_q = torch.empty_like(q)
    grad_p = torch.empty_like(p)
    with torch.cuda.device(q.device):
        _C_cuda.kl_div_rows_backward(code, q.shape[0], q.shape[1], q.data_ptr(), p.data_ptr(),
                                     g.data_ptr(), grad_q.data_ptr(), grad_p.data_ptr(),
                                     _stream(q))
    return grad_q, grad_p


for _name, _fn in (("pgd_step", pgd_step), ("pgd_step_with_mask", pgd_step_with_mask),
                   ("masked_scale", masked_scale), ("random_start", random_start),
                   ("kl_div_rows", kl_div_rows), ("kl_div_rows_backward", kl_div_rows_backward)):
    register(_name, "cuda", _fn, dtypes=DTYPES, devices=("cuda",))
