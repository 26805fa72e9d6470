"""How a call of a fused op reaches a backend: the implementation table, the choice of a
backend, and the one dense memory layout every backend receives.

Table: data, ``{op: {backend: Implementation}}``, filled only by the backends whose loading
succeeded (fastadv/ops/_backends.py, loaded on the first call that needs the table).

Choice: the ``backend=`` argument > the innermost :func:`use_backend` context >
the ``FASTADV_BACKEND`` environment variable > ``"auto"``. ``"auto"`` picks, for CUDA
tensors, triton then cuda then reference; for CPU tensors, cpp then reference, silently
skipping what is missing or does not support the dtype. A backend named explicitly that
cannot serve the call raises RuntimeError naming what is available and how to get it.
:func:`resolve` returns the chosen :class:`Implementation`: eager calls run its ``fn``, and
the torch.library custom ops carry its ``backend`` name (a custom op cannot take a function).

Layout: backends walk operands as flat storage, so every operand of a call has one dense
layout (contiguous or channels_last) with the same element order (:func:`common_layout`).
Strides of size-1 dimensions never move through memory and torch leaves them arbitrary: a
1-channel image is both contiguous and channels_last, with C-strides that differ between the
two. Such operands are re-viewed with one set of strides (no copy) rather than copied.

Backend function contracts (fastadv.ops has validated the arguments; the tensors of one call
share device, dtype, shape and dense strides, so backends may treat them as flat; kernels
launch on the current CUDA device, which fastadv/ops/_library.py sets to the operands'):

- ``pgd_step(x_adv, grad, x, out, *, alpha, eps, sign)``: writes into ``out`` (may alias
  x_adv, which is pgd_step_).
- ``pgd_step_with_mask(x_adv, grad, x, out, mask_out, *, alpha, eps, sign, tol)``:
  writes the new x_adv into ``out`` and H_C into the bool tensor ``mask_out``.
- ``masked_scale(g, mask, out, *, scale)``: out = g * mask * scale.
- ``random_start(x, out, *, eps, kind, scale, clamp, seed)``: kind is "uniform" or "normal";
  ``seed`` is the int fastadv.ops drew from the caller's generator: the key of in-kernel RNGs.
- ``kl_div_logits(logits_q, logits_p) -> Tensor[B]``: the per-row KL of 2-D contiguous [B, C]
  logits, in the logits' dtype (accumulated in float32).
- ``kl_div_logits_backward(logits_q, logits_p, grad_rows) -> (grad_q, grad_p)``, grad_rows [B].
"""
from __future__ import annotations

import contextlib
import importlib
import os
import threading
from typing import Callable, Dict, Iterator, NamedTuple, Optional, Tuple

import torch

BACKEND_NAMES = ("auto", "reference", "cpp", "triton", "cuda")
OPS = ("pgd_step", "pgd_step_with_mask", "masked_scale", "random_start", "kl_div_logits",
       "kl_div_logits_backward")

AUTO_ORDER = {"cuda": ("triton", "cuda", "reference"), "cpu": ("cpp", "reference")}
HOW_TO_GET = {
    "reference": "always present",
    "cpp": "build the C++ extension: pip install -e . (needs a C++ compiler and pybind11)",
    "triton": "needs a CUDA GPU and `pip install triton` (on CPU only with TRITON_INTERPRET=1 "
              "set before fastadv is imported)",
    "cuda": "needs a CUDA GPU and nvcc at install time (pip install -e . with "
            "FASTADV_NO_CUDA unset)",
}


class Implementation(NamedTuple):
    """One backend's function for one op, and what it serves."""
    backend: str
    fn: Callable
    dtypes: Tuple[torch.dtype, ...]
    devices: Tuple[str, ...]


_TABLE: Dict[str, Dict[str, Implementation]] = {op: {} for op in OPS}
_LOAD_ERRORS: Dict[str, str] = {}
_loaded = False
_load_lock = threading.Lock()
_context = threading.local()


def register(op: str, backend: str, fn: Callable, *, dtypes, devices) -> None:
    """Called by fastadv/ops/_backends.py for each op a backend implements."""
    if op not in _TABLE:
        raise ValueError(f"unknown op {op!r}; known ops: {OPS}")
    if backend not in BACKEND_NAMES[1:]:
        raise ValueError(f"unknown backend {backend!r}")
    _TABLE[op][backend] = Implementation(backend, fn, tuple(dtypes), tuple(devices))


def _load_backends() -> None:
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        backends = importlib.import_module("fastadv.ops._backends")  # it imports this module
        for name, load in backends.LOADERS.items():
            try:
                load()
            except Exception as exc:  # a missing optional backend must never break an op
                _LOAD_ERRORS[name] = f"{type(exc).__name__}: {exc}"
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
    auto = AUTO_ORDER.get(kind, ("reference",))
    order = auto + tuple(b for b in BACKEND_NAMES[1:] if b not in auto)
    return tuple(b for b in order
                 if all(b in _TABLE[op] and kind in _TABLE[op][b].devices for op in OPS))


def backend_load_errors() -> Dict[str, str]:
    """{backend: why it did not load} for each optional backend that failed to load here
    (e.g. the CUDA module not built, triton not installed); empty when all loaded."""
    _load_backends()
    return dict(_LOAD_ERRORS)


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
    """The backend name a call asks for, by the precedence above ("auto" when nothing asks)."""
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
    why = _LOAD_ERRORS.get(name)
    entry = _TABLE[op].get(name)
    if entry is None:
        detail = f"it is not installed ({why})" if why else "it is not installed"
    elif kind not in entry.devices:
        detail = f"it does not run on {kind} tensors"
    else:
        detail = f"it does not support {dtype}"
    return RuntimeError(
        f"backend {name!r} cannot run {op} here: {detail}. Available on {kind}: {have}. "
        f"To get {name!r}: {HOW_TO_GET[name]}.")


def resolve(op: str, device, dtype: torch.dtype,
            backend: Optional[str] = None) -> Implementation:
    """The implementation of ``op`` that serves tensors of ``device`` and ``dtype``, chosen
    by ``backend`` and the precedence above."""
    _load_backends()
    name = requested_backend(backend)
    kind = _device_type(device)
    impls = _TABLE[op]
    if name != "auto":
        entry = impls.get(name)
        if entry is None or kind not in entry.devices or dtype not in entry.dtypes:
            raise _unavailable(op, name, kind, dtype)
        return entry
    for candidate in AUTO_ORDER.get(kind, ("reference",)):
        entry = impls.get(candidate)
        if entry is not None and kind in entry.devices and dtype in entry.dtypes:
            return entry
    raise _unavailable(op, "reference", kind, dtype)


def implementation(op: str, backend: str) -> Implementation:
    """What an already resolved ``backend`` registered for ``op``: how a custom op, which
    carries only the backend's name, and a fused backward find their function."""
    return _TABLE[op][backend]


# --- layout ---------------------------------------------------------------------------

def is_standard_layout(t: torch.Tensor) -> bool:
    """Contiguous or channels_last: the dense layouts fastadv.ops hands to backends."""
    return t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last)


def _same_order(t: torch.Tensor, ref: torch.Tensor) -> bool:
    return all(a == b for a, b, n in zip(t.stride(), ref.stride(), ref.shape) if n != 1)


def _restride(t: torch.Tensor, stride) -> torch.Tensor:
    return t if t.stride() == tuple(stride) else t.as_strided(t.shape, stride)


def common_layout(*tensors: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """The operands (all of one shape) with identical dense strides: the first operand's
    layout when every operand already shares its element order, else contiguous copies."""
    first = tensors[0]
    if is_standard_layout(first) and all(_same_order(t, first) for t in tensors[1:]):
        return tuple(_restride(t, first.stride()) for t in tensors)
    contiguous = [t.contiguous() for t in tensors]
    return tuple(_restride(t, contiguous[0].stride()) for t in contiguous)


def shares_layout(t: torch.Tensor, ref: torch.Tensor) -> bool:
    """Whether ``t`` can be used in place with ``ref``'s layout (no copy needed)."""
    return is_standard_layout(ref) and _same_order(t, ref)
