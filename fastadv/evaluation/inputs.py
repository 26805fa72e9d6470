"""What the user passes to evaluate() -> the evaluation points as (x, y) tensors, checked once.

Accepted: an (x, y) pair of tensors (uint8 images are scaled by 1/255), a fastadv.data
ImageData (uint8 x, labels y), or any iterable of (x, y) batches such as a torch DataLoader
or a fastadv.data.DeviceLoader. Only the first ``n_examples`` points are taken, in order, so
the same call always evaluates the same points.

This is where data enters evaluate(), so the pixel values of the whole x are checked here,
once (NaN or values outside [0, 1] raise ValueError); label values are checked by evaluate()
once the model's class count is known.
"""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import torch

from fastadv._checks import check_batch, check_int, check_pixels
from fastadv.data import as_float_images

__all__ = ["collect"]


def collect(data, n_examples: Optional[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_examples`` points of ``data`` (all when None) as float x in [0, 1] and
    int64 labels y, on the device the data came on."""
    if n_examples is not None:
        check_int("n_examples", n_examples, minimum=1)
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        x, y = data
        if isinstance(y, torch.Tensor):  # else check_batch names the bad y below
            # before slicing: taking the first n_examples of each would hide the mismatch
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"data has mismatched lengths: {x.shape[0]} images but "
                                 f"{y.shape[0]} labels")
            y = y[:n_examples]
        x = as_float_images(x[:n_examples])
    elif isinstance(getattr(data, "x", None), torch.Tensor) and hasattr(data, "y") \
            and hasattr(data, "num_classes"):
        x, y = as_float_images(data.x[:n_examples]), data.y[:n_examples]
    elif hasattr(data, "__iter__"):
        x, y = _from_batches(data, n_examples)
    else:
        raise TypeError(f"data must be an (x, y) pair of tensors, a fastadv.data.ImageData or an "
                        f"iterable of (x, y) batches (DataLoader), got {type(data).__name__}")
    check_batch(x, y)
    if x.shape[0] == 0:
        raise ValueError("data is empty: there are no points to evaluate")
    check_pixels("x", x)
    return x, y.long()


def _from_batches(data, n_examples: Optional[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_examples`` points of an iterable of (x, y) batches, concatenated."""
    if getattr(data, "train", False) is True:
        warnings.warn("evaluating on a loader with train=True: it shuffles, augments and "
                      "drops the last batch; pass the ImageData or a loader with "
                      "train=False", RuntimeWarning, stacklevel=4)
    xs, ys, count = [], [], 0
    for batch in data:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise TypeError(f"data must yield (x, y) batches, got {type(batch).__name__}")
        bx, by = as_float_images(batch[0]), batch[1]
        check_batch(bx, by)  # before torch.cat turns a bad batch into an obscure error
        xs.append(bx)
        ys.append(by)
        count += bx.shape[0]
        if n_examples is not None and count >= n_examples:
            break
    if not xs:
        raise ValueError("data is empty: the loader yielded no batches")
    x = torch.cat([t.to(xs[0].device) for t in xs])[:n_examples]
    y = torch.cat([t.to(xs[0].device) for t in ys])[:n_examples]
    return x, y
