"""ImageData: a labelled image set held as uint8 tensors, with its channel statistics.

Images stay uint8 [N, C, H, W] (pixel values 0..255) until a loader turns a batch into floats
in [0, 1], so a whole data set is small enough to live on the accelerator (CIFAR-10's 50,000
training images are 150 MB). mean / std are per-channel statistics in [0, 1] units, meant for
the model's Normalize first layer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from fastadv._checks import check_channel_values, check_int, check_label_tensor, check_labels


@dataclass(eq=False)
class ImageData:
    """x: uint8 [N, C, H, W]; y: int64 [N] in [0, num_classes); mean, std: per channel."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    mean: tuple
    std: tuple
    name: str = "custom"

    def __post_init__(self):
        if not isinstance(self.x, torch.Tensor) or self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise TypeError(f"x must be a uint8 tensor [N, C, H, W], got "
                            f"{_describe(self.x)}")
        self.y = check_label_tensor("y", self.y).long()
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x and y must have the same length, got {self.x.shape[0]} images "
                             f"and {self.y.shape[0]} labels")
        check_int("num_classes", self.num_classes, minimum=2)
        check_labels("labels", self.y, self.num_classes)
        channels = self.x.shape[1]
        self.mean = check_channel_values("mean", self.mean, channels)
        self.std = check_channel_values("std", self.std, channels)
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be > 0 in every channel, got {self.std}")
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {self.name!r}")

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.x.shape[1:])

    def subset(self, indices) -> "ImageData":
        """The images at `indices` (a sequence or tensor of ints), same statistics and name."""
        index = torch.as_tensor(indices, dtype=torch.long, device=self.x.device)
        return ImageData(self.x[index], self.y[index], self.num_classes, self.mean, self.std,
                         self.name)

    def split(self, n_holdout: int, *, seed: int) -> tuple["ImageData", "ImageData"]:
        """A seeded random split into (rest, holdout) with len(holdout) == n_holdout.

        Both parts keep the original order of their images, and the statistics of the whole
        set (a validation split must be normalised exactly as the training data is).
        """
        n = len(self)
        if isinstance(n_holdout, bool) or not isinstance(n_holdout, int) or not 0 <= n_holdout < n:
            raise ValueError(f"n_holdout must be an integer in [0, {n}) for a data set of {n} "
                             f"images, got {n_holdout!r}")
        seed = check_int("seed", seed)
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=generator)
        holdout = order[:n_holdout].sort().values
        rest = order[n_holdout:].sort().values
        return self.subset(rest), self.subset(holdout)

    def __repr__(self) -> str:
        return (f"ImageData(name={self.name!r}, n={len(self)}, image_shape={self.image_shape}, "
                f"num_classes={self.num_classes})")


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__}"
