"""Argument checks shared by every attack.

Attacks are public functions, so each validates once at its entry and then trusts its inputs;
errors name the argument and the bad value (ValueError for a bad value, TypeError for a bad
type), as everywhere in fastadv.
"""
from __future__ import annotations

import torch
from torch import nn

from fastadv.ops._validate import check_float


def check_model(name: str, model) -> nn.Module:
    if not callable(model):
        raise TypeError(f"{name} must be a callable model returning logits, got "
                        f"{type(model).__name__}")
    return model


def check_eps(eps) -> float:
    eps = check_float("eps", eps)  # a finite real number, by the ops' rule
    if eps < 0:
        raise ValueError(f"eps must be >= 0 (pixel units of [0, 1] images, e.g. 8/255), "
                         f"got {eps!r}")
    return eps


def check_positive_float(name: str, value, *, allow_none: bool = False):
    if value is None and allow_none:
        return None
    return check_float(name, value, strictly_positive=True)


def check_int(name: str, value, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def check_batch(x, y) -> None:
    """x: a floating [B, ...] tensor of pixels in [0, 1]; y: int64-like labels [B]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor of pixels in [0, 1], got dtype "
                        f"{x.dtype} (convert uint8 images with x.float() / 255)")
    if x.dim() < 2:
        raise ValueError(f"x must have a batch dimension and at least one feature dimension, "
                         f"got shape {tuple(x.shape)}")
    if y.dim() != 1 or y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"y must be a 1-D integer tensor of class labels, got shape "
                         f"{tuple(y.shape)} and dtype {y.dtype}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y have mismatched lengths: {x.shape[0]} images but "
                         f"{y.shape[0]} labels")
    if x.device != y.device:
        raise ValueError(f"x is on {x.device} but y is on {y.device}")

