"""Backend choice for the fused ops.

The implementation table is data, ``{op_name: {backend_name: (fn, dtypes, device_types)}}``,
filled only by backend modules whose import succeeded (each calls :func:`register` when
imported).

Choice order: the ``backend=`` argument > the innermost :func:`use_backend` context >
the ``FASTADV_BACKEND`` environment variable > ``"auto"``.
``"auto"`` picks, for CUDA tensors, triton then cuda then reference; for CPU tensors, cpp then
reference, silently skipping what is missing or does not support the dtype. A backend named
explicitly that cannot serve the call raises RuntimeError naming what is available and how to
get the missing one.

Backend function contracts (arguments are already validated by fastadv.ops; all tensors of
one call share device, dtype, shape and dense strides, so backends may treat them as flat):

- ``pgd_step(x_adv, grad, x, out, *, alpha, eps, sign)``: writes into ``out`` (may alias x_adv).
- ``pgd_step_with_mask(x_adv, grad, x, out, mask_out, *, alpha, eps, sign, tol)``:
  writes the new x_adv into ``out`` and H_C into the bool tensor ``mask_out``.
- ``masked_scale(g, mask, out, *, scale)``: out = g * mask * scale.
- ``random_start(x, out, *, eps, kind, scale, clamp, generator)``: kind is "uniform" or
  "normal"; backends with in-kernel RNG draw their seed with :func:`seed_from`.
- ``kl_div_rows(logits_q, logits_p) -> Tensor[B]`` for 2-D contiguous [B, C] logits,
  in the logits' dtype (accumulated in float32).
- ``kl_div_rows_backward(logits_q, logits_p, grad_rows) -> (grad_q, grad_p)``, grad_rows [B].
"""
from __future__ import annotations

import contextlib
import importlib
import os
import threading
from typing import Callable, Dict, Iterator, Optional, Tuple

import torch

BACKEND_NAMES = ("auto", "reference", "cpp", "triton", "cuda")
OPS = ("pgd_step", "pgd_step_with_mask", "masked_scale", "random_start",
       "kl_div_rows", "kl_div_rows_backward")

_AUTO_ORDER = {"cuda": ("triton", "cuda", "reference"), "cpu": ("cpp", "reference")}
_HOW_TO_GET = {
    "reference": "always present",
    "cpp": "build the C++ extension: pip install -e . (needs a C++ compiler and pybind11)",
    "triton": "needs a CUDA GPU and `pip install triton` (on CPU only with TRITON_INTERPRET=1 "
              "set before fastadv is imported)",
    "cuda": "needs a CUDA GPU and nvcc at install time (pip install -e . with "
            "FASTADV_NO_CUDA unset)",
}
_BACKEND_MODULES = {
    "reference": "fastadv.ops._backend_reference",
    "cpp": "fastadv.ops._backend_cpp",
    "triton": "fastadv.ops._backend_triton",
    "cuda": "fastadv.ops._backend_cuda",
}

Impl = Tuple[Callable, Tuple[torch.dtype, ...], Tuple[str, ...]]
_TABLE: Dict[str, Dict[str, Impl]] = {op: {} for op in OPS}
_IMPORT_ERRORS: Dict[str, str] = {}
_loaded = False
_load_lock = threading.Lock()
_context = threading.local()


def register(op: str, backend: str, fn: Callable, *, dtypes, devices) -> None:
    """Called by a backend module at import time for each op it implements."""
    if op not in _TABLE:
        raise ValueError(f"unknown op {op!r}; known ops: {OPS}")
    if backend not in BACKEND_NAMES[1:]:
        raise ValueError(f"unknown backend {backend!r}")
    _TABLE[op][backend] = (fn, tuple(dtypes), tuple(devices))


def _load_backends() -> None:
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        for name, module in _BACKEND_MODULES.items():
            try:
                importlib.import_module(module)
            except Exception as exc:  # a missing optional backend must never break import
                _IMPORT_ERRORS[name] = f"{type(exc).__name__}: {exc}"
        _loaded = True


def check_backend_name(backend) -> str:
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a str, got {type(backend).__name__} ({backend!r})")
    if backend not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKEND_NAMES}")
    return backend


def _device_type(device) -> str:
    if isinstance(device, torch.device):
        return device.type
    if not isinstance(device, (str, int)) or isinstance(device, bool):
        raise TypeError(f"device must be a torch.device, str or int, got "
                        f"{type(device).__name__} ({device!r})")
    try:
        return torch.device(device).type
    except RuntimeError as exc:
        raise ValueError(f"device {device!r} is not a torch device: {exc}") from None


def available_backends(device="cpu") -> Tuple[str, ...]:
    """Backends that implement every fused op for tensors on ``device``: auto's candidates
    first, in auto's order, then any others (e.g. triton on CPU under TRITON_INTERPRET=1)."""
    _load_backends()
    kind = _device_type(device)
    auto = _AUTO_ORDER.get(kind, ("reference",))
    order = auto + tuple(b for b in BACKEND_NAMES[1:] if b not in auto)
    return tuple(b for b in order
                 if all(b in _TABLE[op] and kind in _TABLE[op][b][2] for op in OPS))


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Context manager: fused ops inside it use backend ``name`` unless a call names one."""
    check_backend_name(name)
    stack = getattr(_context, "stack", None)
    if stack is None:
        stack = _context.stack = []
    stack.append(name)
    try:
        yield name
    finally:
        stack.pop()


def requested_backend(backend: Optional[str]) -> str:
    if backend is not None:
        return check_backend_name(backend)
    stack = getattr(_context, "stack", None)
    if stack:
        return stack[-1]
    env = os.environ.get("FASTADV_BACKEND")
    if env:
        if env not in BACKEND_NAMES:
            raise ValueError(f"FASTADV_BACKEND={env!r} is not a backend; choose one of "
                             f"{BACKEND_NAMES}")
        return env
    return "auto"


def _unavailable(op: str, name: str, kind: str, dtype: torch.dtype) -> RuntimeError:
    have = available_backends(kind)
    why = _IMPORT_ERRORS.get(name)
    entry = _TABLE[op].get(name)
    if entry is None:
        detail = f"it is not installed ({why})" if why else "it is not installed"
    elif kind not in entry[2]:
        detail = f"it does not run on {kind} tensors"
    else:
        detail = f"it does not support {dtype}"
    return RuntimeError(
        f"backend {name!r} cannot run {op} here: {detail}. Available on {kind}: {have}. "
        f"To get {name!r}: {_HOW_TO_GET[name]}.")


def resolve(op: str, device, dtype: torch.dtype, backend: Optional[str] = None) -> Tuple[str, Callable]:
    """Return ``(backend_name, fn)`` for ``op`` on tensors of ``device``/``dtype``."""
    _load_backends()
    name = requested_backend(backend)
    kind = _device_type(device)
    impls = _TABLE[op]
    if name != "auto":
        entry = impls.get(name)
        if entry is None or kind not in entry[2] or dtype not in entry[1]:
            raise _unavailable(op, name, kind, dtype)
        return name, entry[0]
    for candidate in _AUTO_ORDER.get(kind, ("reference",)):
        entry = impls.get(candidate)
        if entry is not None and kind in entry[2] and dtype in entry[1]:
            return candidate, entry[0]
    raise _unavailable(op, "reference", kind, dtype)


def seed_from(generator: Optional[torch.Generator]) -> int:
    """A 63-bit seed for in-kernel RNG, drawn from ``generator`` (or torch's default CPU RNG)
    so that torch.manual_seed and explicit generators make kernel draws reproducible."""
    if generator is not None and generator.device.type != "cpu":
        return int(torch.randint(0, 2 ** 62, (1,), generator=generator,
                                 device=generator.device).item())
    return int(torch.randint(0, 2 ** 62, (1,), generator=generator).item())
