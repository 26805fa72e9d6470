"""Losses that white-box attacks ascend, summed over the batch.

The sum (not the mean) keeps each point's input gradient independent of the batch size,
which only matters for non-sign steps but costs nothing for sign steps.

- Cross-entropy: CE(z, y) = -z_y + log sum_j exp(z_j).
- DLR (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
  diverse parameter-free attacks", ICML 2020, eq. 5), the difference of logits ratio, which
  is invariant to shifting and rescaling the logits:
      DLR(z, y) = -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12),
  with z_pi1 >= z_pi2 >= z_pi3 the sorted logits. It needs at least three classes.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from fastadv._checks import check_choice

__all__ = ["NAMES", "cross_entropy_sum", "dlr_sum", "get"]

NAMES = ("ce", "dlr")


def cross_entropy_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="sum")


def dlr_sum(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if logits.shape[-1] < 3:
        raise ValueError(f"the DLR loss needs at least 3 classes, the model has "
                         f"{logits.shape[-1]}; use loss='ce'")
    logits = logits.float()
    sorted_logits = logits.sort(dim=1).values
    true_logit = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    best_other = others.max(dim=1).values
    spread = sorted_logits[:, -1] - sorted_logits[:, -3] + 1e-12
    return (-(true_logit - best_other) / spread).sum()


def get(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss called ``name`` (one of NAMES); the check of every attack's ``loss=``."""
    check_choice("loss", name, NAMES)
    return cross_entropy_sum if name == "ce" else dlr_sum
