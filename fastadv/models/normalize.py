"""Per-channel input normalization as the first layer of every fastadv model.

fastadv keeps images in [0, 1] pixel units everywhere outside the model, so that eps and
step sizes mean the same thing for every data set (8/255 is eight grey levels). The model
itself standardises its input:  Normalize(x)[:, c] = (x[:, c] - mean[c]) / std[c].
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from fastadv._checks import check_channel_values


class Normalize(nn.Module):
    """(x - mean) / std per channel; mean and std are buffers shaped [1, C, 1, 1]."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        mean_values = check_channel_values("mean", mean)
        std_values = check_channel_values("std", std)
        if len(mean_values) != len(std_values):
            raise ValueError(
                f"mean and std must have the same number of channels, got mean={mean_values} "
                f"and std={std_values}")
        if any(s <= 0 for s in std_values):
            raise ValueError(f"std must be > 0 in every channel, got std={std_values}")
        # buffers, not parameters: they move with .to() and are saved, but are never trained
        self.register_buffer("mean", torch.tensor(mean_values).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std_values).view(1, -1, 1, 1))

    @property
    def num_channels(self) -> int:
        return self.mean.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        fmt = lambda t: "(" + ", ".join(f"{v:.4g}" for v in t.flatten().tolist()) + ")"  # noqa: E731
        return f"mean={fmt(self.mean)}, std={fmt(self.std)}"
