"""One dense memory layout for all operands of a fused op.

Backends walk tensors as flat storage, so every operand must be dense (contiguous or
channels_last) with the same element order. Strides of size-1 dimensions never move through
memory, and torch leaves them arbitrary: a 1-channel image is both contiguous and
channels_last, with C-strides that differ between the two. Such operands are re-viewed with
one set of strides (no copy) rather than rejected or copied.
"""
from __future__ import annotations

from typing import Tuple

import torch


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
