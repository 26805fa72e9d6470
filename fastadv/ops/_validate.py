"""Argument checks shared by the public ops: done once, in the public function, so that
backends may assume valid input. Every error names the argument and the offending value.

Value checks on x (NaN, outside [0, 1]) read the tensor, which is a host synchronisation on
GPU; they run once per tensor version (a training batch is checked once however many
attack steps reuse it) and can be switched off with :func:`value_checks`.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import threading
from typing import Iterator

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
RANGE_SLACK = 1e-6

_state = threading.local()


@contextlib.contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Turn the data-reading checks of x (NaN, range) on or off inside the block."""
    previous = getattr(_state, "enabled", True)
    _state.enabled = bool(enabled)
    try:
        yield
    finally:
        _state.enabled = previous


def check_tensor(name: str, t) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating tensor (float16, bfloat16, float32 or "
                        f"float64), got dtype {t.dtype}")
    return t


def check_like(name: str, t, ref_name: str, ref: torch.Tensor) -> torch.Tensor:
    check_tensor(name, t)
    if t.shape != ref.shape:
        raise ValueError(f"{name} has shape {tuple(t.shape)} but {ref_name} has shape "
                         f"{tuple(ref.shape)}; they must match")
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}")
    if t.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {t.dtype} but {ref_name} has dtype {ref.dtype}")
    return t


def check_float(name: str, value, *, minimum=None, maximum=None,
                strictly_positive=False) -> float:
    """``value`` as a finite float, within [minimum, maximum] and > 0 when asked; also the
    hyperparameter check of fastadv.methods (methods/_base.py, check_real)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if strictly_positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_choice(name: str, value, choices) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__} ({value!r})")
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} ({value!r})")
    return value


def check_pixels(name: str, x: torch.Tensor) -> None:
    """x must be free of NaN and inside [0, 1] up to RANGE_SLACK."""
    if (not getattr(_state, "enabled", True) or x.numel() == 0 or x.device.type == "meta"
            or torch.compiler.is_compiling()):
        return
    # Inference tensors have no version counter, so their checks cannot be cached.
    stamp = None if x.is_inference() else (x._version, x.data_ptr())
    if stamp is not None and getattr(x, "_fastadv_checked", None) == stamp:
        return
    lo, hi = torch.aminmax(x.detach())
    lo, hi = float(lo), float(hi)
    if math.isnan(lo) or math.isnan(hi):
        raise ValueError(f"{name} contains NaN")
    if lo < -RANGE_SLACK or hi > 1.0 + RANGE_SLACK:
        raise ValueError(f"{name} must lie in [0, 1] (pixel units), got values in "
                         f"[{lo:.6g}, {hi:.6g}]; normalize inside the model, not the data")
    if stamp is None:
        return
    try:
        x._fastadv_checked = stamp
    except (AttributeError, RuntimeError):  # some tensor subclasses refuse attributes
        pass
