"""Held-out validation and the choice of the best checkpoint.

Robust accuracy for model selection during training (Rice et al., ICML 2020): PGD-k with
a uniform start clipped to the box, CE loss, step eps/4, eval mode, on held-out data, using
the same PGD as fastadv.evaluate (fastadv.attacks.pgd): a point is robust only if no iterate
was misclassified. The attack draws its start from its own generator so that validating
does not change the training trajectory (resume and validation frequency leave the weights
unchanged).

The best checkpoint is the one of the highest validation robust accuracy, ties (common early
on, when robust accuracy is still 0) going to the higher clean accuracy; without validation
data it is the latest epoch (:class:`BestTracker`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

import torch

from fastadv.attacks.pgd import pgd
from fastadv._checks import check_int, check_optional_float
from fastadv.models.mode import bn_mode


@dataclasses.dataclass(frozen=True)
class Validation:
    """How train() validates: every ``every`` epochs (and after the last), PGD-``steps`` with
    step eps/4 at radius ``eps`` (None: the method's eps)."""

    every: int = 1
    steps: int = 10
    eps: Optional[float] = None

    def __post_init__(self):
        check_int("validation.every", self.every, minimum=1)
        check_int("validation.steps", self.steps, minimum=0)
        check_optional_float("validation.eps", self.eps, minimum=0.0, maximum=1.0)

    def due(self, epoch: int, epochs: int) -> bool:
        """Whether to validate after ``epoch`` (1-based) of ``epochs``."""
        return epoch % self.every == 0 or epoch == epochs


class BestTracker:
    """The best epoch so far by validation robust accuracy (ties: higher clean accuracy), or
    the latest epoch when there is no validation data."""

    def __init__(self, validated: bool, metric: float = -math.inf,
                 epoch: Optional[int] = None, clean: float = -math.inf):
        self.validated, self.metric, self.epoch, self.clean = validated, metric, epoch, clean

    def update(self, record: dict, stopped: bool) -> bool:
        """Take the epoch of ``record`` into account; True if it is the new best."""
        if not self.validated:
            # after a guard stop the weights are the previous epoch's, already saved as best
            improved, metric, clean = not stopped, float(record["epoch"]), -math.inf
        else:
            metric = record.get("val_robust_accuracy", -math.inf)
            clean = record.get("val_clean_accuracy", -math.inf)
            improved = metric > self.metric or (metric == self.metric and clean > self.clean)
        if improved:
            self.metric, self.epoch, self.clean = metric, record["epoch"], clean
        return improved

    def state_dict(self) -> dict:
        return {"best_metric": self.metric, "best_epoch": self.epoch, "best_clean": self.clean}

    def load_state_dict(self, state: dict) -> None:
        self.metric = state.get("best_metric", -math.inf)
        self.epoch = state.get("best_epoch")
        self.clean = state.get("best_clean", -math.inf)

    @property
    def robust_accuracy(self) -> Optional[float]:
        """The best validation robust accuracy (None without validation)."""
        return self.metric if self.validated and math.isfinite(self.metric) else None


def clean_and_pgd_accuracy(model, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                           steps: int = 10, alpha: Optional[float] = None,
                           batch_size: int = 512, seed: int = 0) -> Tuple[float, float]:
    """(clean accuracy, PGD-``steps`` robust accuracy) of ``model`` on (x, y) in eval mode,
    step ``alpha`` (None: pgd's eps/4); the model's train/eval flags are restored afterwards."""
    if x.shape[0] == 0:
        raise ValueError("cannot evaluate on an empty set")
    generator = torch.Generator(device=x.device)
    generator.manual_seed(seed)
    clean = torch.zeros((), device=x.device)
    robust = torch.zeros((), device=x.device)
    with bn_mode(model, "eval"):
        for start in range(0, x.shape[0], batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            with torch.no_grad():
                right = model(xb).argmax(1) == yb
            clean += right.sum()
            if eps > 0 and steps > 0:
                _, broken = pgd(model, xb, yb, eps=eps, steps=steps, alpha=alpha,
                                generator=generator)
                right &= ~broken
            robust += right.sum()
    n = x.shape[0]
    return clean.item() / n, robust.item() / n
