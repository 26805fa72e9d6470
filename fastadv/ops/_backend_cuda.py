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
from fastadv.ops._backend_checks import BackendChecks  # noqa: E402
from fastadv.ops._dispatch import seed_from  # noqa: E402

_why = _C_cuda.probe()
if _why:
    raise ImportError(f"fastadv._C_cuda cannot use the GPU: {_why}")

# setup.py compiles sm_80 SASS (runs on every 8.x GPU) and compute_90 PTX (JIT-compiled on
# 9.0 and newer): an older GPU has no kernel image, and every launch would fail with "no
# kernel image is available", so the backend stays out of the table there (auto then
# falls back instead of failing).
MIN_CAPABILITY = (8, 0)
_old = [f"cuda:{i} ({torch.cuda.get_device_name(i)}, sm_{major}{minor})"
        for i in range(torch.cuda.device_count())
        for major, minor in [torch.cuda.get_device_capability(i)]
        if (major, minor) < MIN_CAPABILITY]
if _old:
    raise ImportError(f"fastadv._C_cuda is compiled for compute capability >= 8.0 "
                      f"(sm_80, compute_90); these GPUs are older: {', '.join(_old)}")

_checks = BackendChecks("cuda", "cuda", {torch.float32: _C_cuda.FLOAT32,
                                         torch.float16: _C_cuda.FLOAT16,
                                         torch.bfloat16: _C_cuda.BFLOAT16},
                        any_dense_layout=False)
DTYPES = _checks.dtypes


def _stream(t: torch.Tensor) -> int:
    return torch.cuda.current_stream(t.device).cuda_stream


def pgd_step(x_adv, grad, x, out, *, alpha, eps, sign):
    names = ("x_adv", "grad", "x", "out")
    code = _checks.flat(names, (x_adv, grad, x, out))
    _checks.same_dtype(names, (x_adv, grad, x, out), x_adv.dtype)
    with torch.cuda.device(x.device):
        _C_cuda.pgd_step(code, x.numel(), x_adv.data_ptr(), grad.data_ptr(), x.data_ptr(),
                         out.data_ptr(), float(alpha), float(eps), bool(sign), _stream(x))


def pgd_step_with_mask(x_adv, grad, x, out, mask_out, *, alpha, eps, sign, tol):
    names = ("x_adv", "grad", "x", "out")
    code = _checks.flat(names + ("mask_out",), (x_adv, grad, x, out, mask_out))
    _checks.same_dtype(names, (x_adv, grad, x, out), x_adv.dtype)
    _checks.same_dtype(("mask_out",), (mask_out,), torch.bool)
    with torch.cuda.device(x.device):
        _C_cuda.pgd_step_with_mask(code, x.numel(), x_adv.data_ptr(), grad.data_ptr(),
                                   x.data_ptr(), out.data_ptr(), mask_out.data_ptr(),
                                   float(alpha), float(eps), bool(sign), float(tol), _stream(x))


def masked_scale(g, mask, out, *, scale):
    code = _checks.flat(("g", "mask", "out"), (g, mask, out))
    _checks.same_dtype(("out",), (out,), g.dtype)
    _checks.same_dtype(("mask",), (mask,), torch.bool)
    with torch.cuda.device(g.device):
        _C_cuda.masked_scale(code, g.numel(), g.data_ptr(), mask.data_ptr(), out.data_ptr(),
                             float(scale), _stream(g))


def random_start(x, out, *, eps, kind, scale, clamp, generator):
    code = _checks.flat(("x", "out"), (x, out))
    _checks.same_dtype(("out",), (out,), x.dtype)
    kind_code = _checks.kind(kind)
    seed = seed_from(generator)
    with torch.cuda.device(x.device):
        _C_cuda.random_start(code, x.numel(), x.data_ptr(), out.data_ptr(), seed, kind_code,
                             float(eps), float(0.0 if scale is None else scale), bool(clamp),
                             _stream(x))


def kl_div_rows(logits_q, logits_p):
    code, q, p = _checks.rows(logits_q, logits_p)
    out = torch.empty(q.shape[0], dtype=q.dtype, device=q.device)
    with torch.cuda.device(q.device):
        _C_cuda.kl_div_rows(code, q.shape[0], q.shape[1], q.data_ptr(), p.data_ptr(),
                            out.data_ptr(), _stream(q))
    return out


def kl_div_rows_backward(logits_q, logits_p, grad_rows):
    code, q, p, g = _checks.rows_and_grad(logits_q, logits_p, grad_rows)
    grad_q = torch.empty_like(q)
    grad_p = torch.empty_like(p)
    with torch.cuda.device(q.device):
        _C_cuda.kl_div_rows_backward(code, q.shape[0], q.shape[1], q.data_ptr(), p.data_ptr(),
                                     g.data_ptr(), grad_q.data_ptr(), grad_p.data_ptr(),
                                     _stream(q))
    return grad_q, grad_p


_checks.register(pgd_step, pgd_step_with_mask, masked_scale, random_start, kl_div_rows,
                 kl_div_rows_backward)
