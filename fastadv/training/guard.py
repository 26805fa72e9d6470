"""The catastrophic-overfitting guard of Fast AT's official code (Wong, Rice, Kolter, ICLR
2020): at the end of every epoch, PGD-5 with step 2/255 (eps/4, scaled with eps) on one fixed
training batch; if its robust accuracy drops by more than ``threshold`` (0.2) from the
previous epoch, restore the previous epoch's weights and stop. Usable with every method.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from fastadv._checks import check_float, check_int
from fastadv.training.validation import clean_and_pgd_accuracy


@dataclasses.dataclass(frozen=True)
class Guard:
    """train(guard=Guard(...)): stop when PGD-5 robust accuracy on a fixed batch of ``size``
    training images drops by more than ``threshold`` (Fast AT's code: 0.2, one batch of 128)."""

    threshold: float = 0.2
    size: int = 128

    def __post_init__(self):
        check_float("guard.threshold", self.threshold, strictly_positive=True, maximum=1.0)
        check_int("guard.size", self.size, minimum=1)


def as_guard(value, method) -> Optional[Guard]:
    """train()'s ``guard=``: None (the method's default: on for fast_at), a bool or a Guard."""
    if value is None:
        value = getattr(method, "guard_by_default", False)
    if isinstance(value, Guard):
        return value
    if not isinstance(value, bool):
        raise TypeError(f"guard must be None, a bool or a fastadv.training.Guard, got "
                        f"{type(value).__name__} ({value!r})")
    return Guard() if value else None


class OverfitGuard:
    """The guard's state during a run: the previous epoch's accuracy and weights."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, eps: float, threshold: float = 0.2,
                 steps: int = 5, seed: int = 0):
        self.x, self.y, self.eps, self.threshold = x, y, eps, threshold
        self.steps, self.seed = steps, seed
        self.previous_accuracy: Optional[float] = None
        self.previous_state: Optional[dict] = None

    def check(self, model) -> tuple:
        """(robust accuracy on the guard batch, triggered?). When triggered the model holds the
        previous epoch's weights on return."""
        _, accuracy = clean_and_pgd_accuracy(model, self.x, self.y, eps=self.eps,
                                             steps=self.steps, seed=self.seed)
        if (self.previous_accuracy is not None
                and self.previous_accuracy - accuracy > self.threshold):
            model.load_state_dict(self.previous_state)
            return accuracy, True
        self.previous_accuracy = accuracy
        self.previous_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return accuracy, False

    def state_dict(self) -> dict:
        return {"previous_accuracy": self.previous_accuracy, "previous_state": self.previous_state}

    def load_state_dict(self, state: dict) -> None:
        self.previous_accuracy = state.get("previous_accuracy")
        self.previous_state = state.get("previous_state")
