"""Operand checks shared by the compiled backends ("cpp" in _backend_cpp.py, "cuda" in
_backend_cuda.py).

Both extensions are built without torch headers and receive raw ``data_ptr()`` integers and
element counts, so a wrong call would read or write out of bounds instead of raising. These
checks are the cheap ones that prevent it: the backend's device, one dense layout shared by
all operands, a dtype the extension was compiled for. fastadv.ops has already validated the
arguments themselves; every message names the backend, the operand and what was expected.
A BackendChecks also registers its backend's ops, since it knows the device and dtypes.
"""
from __future__ import annotations

from typing import Callable, Dict, Sequence, Tuple

import torch

from fastadv.ops._dispatch import register
from fastadv.ops._layout import is_standard_layout

# Random-start distributions, numbered as csrc/*random_start* expect them.
KINDS = {"uniform": 0, "normal": 1}


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


class BackendChecks:
    """The checks of one backend.

    backend: its name, for messages; device_type: "cpu" or "cuda"; codes: the extension's
    dtype code for each supported torch dtype; any_dense_layout: whether flat operands may
    be any dense permutation (cpp) or only contiguous / channels_last (cuda, the layouts
    fastadv.ops hands out, which is all its kernels were validated on).
    """

    def __init__(self, backend: str, device_type: str, codes: Dict[torch.dtype, int], *,
                 any_dense_layout: bool):
        self.backend = backend
        self.device_type = device_type
        self.codes = dict(codes)
        self.dtypes = tuple(self.codes)
        self.any_dense_layout = any_dense_layout

    def _fail(self, error, message: str):
        return error(f"{self.backend} backend: {message}")

    def on_device(self, names: Sequence[str], tensors: Sequence[torch.Tensor]) -> None:
        """Every tensor on the backend's device type, and on the same device as the first."""
        first = tensors[0]
        for name, t in zip(names, tensors):
            if t.device.type != self.device_type:
                raise self._fail(ValueError, f"{name} is on {t.device}, expected a "
                                             f"{self.device_type.upper()} tensor")
            if t.device != first.device:
                raise self._fail(ValueError, f"{name} is on {t.device}, expected "
                                             f"{first.device} like {names[0]}")

    def code(self, name: str, t: torch.Tensor) -> int:
        """The extension's dtype code for ``t``."""
        code = self.codes.get(t.dtype)
        if code is None:
            raise self._fail(TypeError, f"{name} has dtype {t.dtype}; supported: "
                                        f"{list(self.dtypes)}")
        return code

    def flat(self, names: Sequence[str], tensors: Sequence[torch.Tensor]) -> int:
        """Returns the dtype code of the first tensor after checking that all ``tensors``
        can be walked as flat arrays of one dense layout on one device of the backend."""
        self.on_device(names, tensors)
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
        return self.code(names[0], first)

    def same_dtype(self, names: Sequence[str], tensors: Sequence[torch.Tensor],
                   dtype: torch.dtype) -> None:
        for name, t in zip(names, tensors):
            if t.dtype != dtype:
                raise self._fail(TypeError, f"{name} has dtype {t.dtype}, expected {dtype}")

    def kind(self, kind: str) -> int:
        """The extension's number for a random-start distribution."""
        if kind not in KINDS:
            raise self._fail(ValueError, f"kind must be one of {tuple(KINDS)}, got {kind!r}")
        return KINDS[kind]

    def rows(self, logits_q: torch.Tensor, logits_p: torch.Tensor
             ) -> Tuple[int, torch.Tensor, torch.Tensor]:
        """(dtype code, contiguous q, contiguous p) for the row-wise KL kernels."""
        if logits_q.dim() != 2 or logits_p.shape != logits_q.shape:
            raise self._fail(ValueError, f"logits must be 2-D [B, C] of one shape, got "
                                         f"{tuple(logits_q.shape)} and "
                                         f"{tuple(logits_p.shape)}")
        names = ("logits_q", "logits_p")
        self.on_device(names, (logits_q, logits_p))
        code = self.code(names[0], logits_q)
        self.same_dtype(names[1:], (logits_p,), logits_q.dtype)
        # Only the layout inside a row matters to the kernels (row stride = C), so the two
        # are made contiguous rather than compared stride for stride.
        return code, logits_q.contiguous(), logits_p.contiguous()

    def rows_and_grad(self, logits_q: torch.Tensor, logits_p: torch.Tensor,
                      grad_rows: torch.Tensor
                      ) -> Tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`rows` plus the upstream gradient of kl_div_rows as the float32 [B] array
        the backward kernels read: float32 whatever the logits' dtype (the reference does not
        round it either), and contiguous, since the gradient of a batchmean/sum is often an
        expanded scalar (stride 0)."""
        code, q, p = self.rows(logits_q, logits_p)
        if grad_rows.shape != q.shape[:1]:
            raise self._fail(ValueError, f"grad_rows has shape {tuple(grad_rows.shape)}, "
                                         f"expected ({q.shape[0]},)")
        return code, q, p, grad_rows.to(device=q.device, dtype=torch.float32).contiguous()

    def register(self, *functions: Callable) -> None:
        """Registers each function as this backend's implementation of the op it is named
        after, for the backend's device type and dtypes."""
        for fn in functions:
            register(fn.__name__, self.backend, fn, dtypes=self.dtypes,
                     devices=(self.device_type,))
