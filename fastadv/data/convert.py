"""Images as the methods see them: floating point in [0, 1].

Data sets keep uint8 pixels (0..255) until a batch is used; :func:`as_float_images` is the one
conversion, shared by the loaders, train() and evaluate().
"""
from __future__ import annotations

import torch


def as_float_images(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """uint8 images -> float32 / 255; floating images are returned as they are."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be uint8 or floating point images, got dtype {x.dtype}")
    return x
