"""The functions of the "cpp" and "cuda" backends: one wrapper per op, written once for both
compiled extensions, fastadv._C (C++/OpenMP, csrc/cpu/) and fastadv._C_cuda (CUDA,
csrc/cuda/), which share one calling convention.

Both are built without torch headers and take raw ``data_ptr()`` integers, element counts and
scalars, so a wrong call would read or write out of bounds instead of raising. Each wrapper
first makes the cheap checks that prevent it: the backend's device, one dense layout shared
by all operands, a dtype the extension was compiled for (fastadv.ops has already validated the
arguments themselves; every message names the backend, the operand and what was expected).
It then allocates what the contract returns and passes, as the last argument, what only the
extension's device needs: for _C the OpenMP team size, ``torch.get_num_threads()``, so
torch.set_num_threads governs these kernels as it governs torch's own; for _C_cuda torch's
current stream, so the kernels are ordered with the surrounding torch work.

Numerics: the cpp step ops round exactly like eager torch on CPU (bitwise equal in float32;
float16 computed in float and rounded after every operation the reference rounds), the cuda
ones round every intermediate the reference rounds. Random starts use the counter-based RNG of
csrc/common/counter_rng.h keyed by the op's seed: reproducible for a seed, the same uniform
draws on both extensions, not torch's stream.
"""
from __future__ import annotations

from types import ModuleType
from typing import Callable, Dict, Sequence, Tuple

import torch

from fastadv.ops._dispatch import OPS, is_standard_layout, register

# Random-start distributions, numbered as csrc/*/random_start.* expect them.
KINDS = {"uniform": 0, "normal": 1}
STEP_OPERANDS = ("x_adv", "grad", "x", "out")


def is_dense(t: torch.Tensor) -> bool:
    """Whether ``t`` covers one gap-free block of memory in some order of its dimensions."""
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


def openmp_threads(_: torch.Tensor) -> int:
    """The last argument of every fastadv._C function: the OpenMP team size."""
    return torch.get_num_threads()


def current_stream(t: torch.Tensor) -> int:
    """The last argument of every fastadv._C_cuda function: torch's stream on t's GPU."""
    return torch.cuda.current_stream(t.device).cuda_stream


class CompiledBackend:
    """The op wrappers and operand checks of one compiled extension.

    name: the backend's name, for messages and the table; module: the extension;
    device_type: "cpu" or "cuda"; codes: the extension's dtype code for each supported torch
    dtype; any_dense_layout: whether flat operands may be any dense permutation (cpp) or only
    contiguous / channels_last (cuda: the layouts fastadv.ops hands out, all its kernels were
    validated on); last_argument: what the extension's device needs, from the first operand.
    """

    def __init__(self, name: str, module: ModuleType, device_type: str,
                 codes: Dict[torch.dtype, int], *, any_dense_layout: bool,
                 last_argument: Callable[[torch.Tensor], int]):
        self.name = name
        self.module = module
        self.device_type = device_type
        self.codes = dict(codes)
        self.dtypes = tuple(self.codes)
        self.any_dense_layout = any_dense_layout
        self.last_argument = last_argument

    def register(self) -> None:
        """Registers every op's wrapper as this backend's implementation."""
        for op in OPS:
            register(op, self.name, getattr(self, op), dtypes=self.dtypes,
                     devices=(self.device_type,))

    # --- the ops (contracts in fastadv/ops/_dispatch.py) --------------------------------

    def pgd_step(self, x_adv, grad, x, out, *, alpha, eps, sign):
        code = self._step_operands(x_adv, grad, x, out)
        self.module.pgd_step(code, x.numel(), x_adv.data_ptr(), grad.data_ptr(), x.data_ptr(),
                             out.data_ptr(), float(alpha), float(eps), bool(sign),
                             self.last_argument(x))

    def pgd_step_with_mask(self, x_adv, grad, x, out, mask_out, *, alpha, eps, sign, tol):
        code = self._step_operands(x_adv, grad, x, out, mask_out)
        self.module.pgd_step_with_mask(code, x.numel(), x_adv.data_ptr(), grad.data_ptr(),
                                       x.data_ptr(), out.data_ptr(), mask_out.data_ptr(),
                                       float(alpha), float(eps), bool(sign), float(tol),
                                       self.last_argument(x))

    def masked_scale(self, g, mask, out, *, scale):
        code = self._flat(("g", "mask", "out"), (g, mask, out))
        self._same_dtype(("out",), (out,), g.dtype)
        self._same_dtype(("mask",), (mask,), torch.bool)
        self.module.masked_scale(code, g.numel(), g.data_ptr(), mask.data_ptr(), out.data_ptr(),
                                 float(scale), self.last_argument(g))

    def random_start(self, x, out, *, eps, kind, scale, clamp, seed):
        code = self._flat(("x", "out"), (x, out))
        self._same_dtype(("out",), (out,), x.dtype)
        if kind not in KINDS:
            raise self._fail(ValueError, f"kind must be one of {tuple(KINDS)}, got {kind!r}")
        self.module.random_start(code, x.numel(), x.data_ptr(), out.data_ptr(), int(seed),
                                 KINDS[kind], float(eps), float(0.0 if scale is None else scale),
                                 bool(clamp), self.last_argument(x))

    def kl_div_logits(self, logits_q, logits_p):
        code, q, p = self._rows(logits_q, logits_p)
        out = torch.empty(q.shape[0], dtype=q.dtype, device=q.device)
        self.module.kl_div_logits(code, q.shape[0], q.shape[1], q.data_ptr(), p.data_ptr(),
                                  out.data_ptr(), self.last_argument(q))
        return out

    def kl_div_logits_backward(self, logits_q, logits_p, grad_rows):
        code, q, p = self._rows(logits_q, logits_p)
        if grad_rows.shape != q.shape[:1]:
            raise self._fail(ValueError, f"grad_rows has shape {tuple(grad_rows.shape)}, "
                                         f"expected ({q.shape[0]},)")
        # float32 whatever the logits' dtype (the reference does not round it either), and
        # contiguous: the gradient of a batchmean/sum is often an expanded scalar (stride 0).
        g = grad_rows.to(device=q.device, dtype=torch.float32).contiguous()
        grad_q = torch.empty_like(q)
        grad_p = torch.empty_like(p)
        self.module.kl_div_logits_backward(code, q.shape[0], q.shape[1], q.data_ptr(),
                                           p.data_ptr(), g.data_ptr(), grad_q.data_ptr(),
                                           grad_p.data_ptr(), self.last_argument(q))
        return grad_q, grad_p

    # --- operand checks -------------------------------------------------------------------

    def _fail(self, error, message: str):
        return error(f"{self.name} backend: {message}")

    def _on_device(self, names: Sequence[str], tensors: Sequence[torch.Tensor]) -> None:
        """Every tensor on the backend's device type, and on the same device as the first."""
        first = tensors[0]
        for name, t in zip(names, tensors):
            if t.device.type != self.device_type:
                raise self._fail(ValueError, f"{name} is on {t.device}, expected a "
                                             f"{self.device_type.upper()} tensor")
            if t.device != first.device:
                raise self._fail(ValueError, f"{name} is on {t.device}, expected "
                                             f"{first.device} like {names[0]}")

    def _code(self, name: str, t: torch.Tensor) -> int:
        """The extension's dtype code for ``t``."""
        code = self.codes.get(t.dtype)
        if code is None:
            raise self._fail(TypeError, f"{name} has dtype {t.dtype}; supported: "
                                        f"{list(self.dtypes)}")
        return code

    def _flat(self, names: Sequence[str], tensors: Sequence[torch.Tensor]) -> int:
        """Returns the dtype code of the first tensor after checking that all ``tensors``
        can be walked as flat arrays of one dense layout on one device of the backend."""
        self._on_device(names, tensors)
        first = tensors[0]
        for name, t in zip(names, tensors):
            if t.shape != first.shape or t.stride() != first.stride():
                raise self._fail(ValueError, f"{name} has shape {tuple(t.shape)} and strides "
                                             f"{t.stride()}, expected {tuple(first.shape)} and "
                                             f"{first.stride()} like {names[0]}")
        if self.any_dense_layout:
            if not is_dense(first):
                raise self._fail(ValueError, f"{names[0]} with strides {first.stride()} is "
                                             f"not dense")
        elif not is_standard_layout(first):
            raise self._fail(ValueError, f"{names[0]} with strides {first.stride()} is neither "
                                         f"contiguous nor channels_last")
        return self._code(names[0], first)

    def _same_dtype(self, names: Sequence[str], tensors: Sequence[torch.Tensor],
                    dtype: torch.dtype) -> None:
        for name, t in zip(names, tensors):
            if t.dtype != dtype:
                raise self._fail(TypeError, f"{name} has dtype {t.dtype}, expected {dtype}")

    def _step_operands(self, x_adv, grad, x, out, mask_out=None) -> int:
        """The checks of the step ops: x_adv, grad, x, out (and the bool mask_out) flat
        alike, in one dtype."""
        tensors = (x_adv, grad, x, out)
        if mask_out is None:
            code = self._flat(STEP_OPERANDS, tensors)
        else:
            code = self._flat(STEP_OPERANDS + ("mask_out",), tensors + (mask_out,))
        self._same_dtype(STEP_OPERANDS, tensors, x_adv.dtype)
        if mask_out is not None:
            self._same_dtype(("mask_out",), (mask_out,), torch.bool)
        return code

    def _rows(self, logits_q: torch.Tensor, logits_p: torch.Tensor
              ) -> Tuple[int, torch.Tensor, torch.Tensor]:
        """(dtype code, contiguous q, contiguous p) for the row-wise KL kernels."""
        if logits_q.dim() != 2 or logits_p.shape != logits_q.shape:
            raise self._fail(ValueError, f"logits must be 2-D [B, C] of one shape, got "
                                         f"{tuple(logits_q.shape)} and "
                                         f"{tuple(logits_p.shape)}")
        names = ("logits_q", "logits_p")
        self._on_device(names, (logits_q, logits_p))
        code = self._code(names[0], logits_q)
        self._same_dtype(names[1:], (logits_p,), logits_q.dtype)
        # Only the layout inside a row matters to the kernels (row stride = C), so the two
        # are made contiguous rather than compared stride for stride.
        return code, logits_q.contiguous(), logits_p.contiguous()
