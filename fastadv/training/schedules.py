"""Learning-rate schedules, stepped every iteration (as in Fast AT's and Fast-BAT's code).

The LR of iteration i (0-based, T iterations in all, E = i / iterations_per_epoch):
- "cyclic":    triangle 0 -> lr_max -> 0 with the top at fraction ``peak`` of training
               (0.5 in Fast AT / Fast-BAT, 0.4 in GradAlign), evaluated at t = (i + 0.5) / T
               so that no step is wasted at lr 0;
- "piecewise": lr_max * decay ** (number of milestones <= E), milestones in epochs
               (default: half and three quarters of training, as Rice et al.);
- "cosine":    lr_max * (1 + cos(pi * (i + 0.5) / T)) / 2;
- "constant":  lr_max.
A schedule is a pure function of the iteration, so resuming needs only the iteration count.

train() takes ``schedule=`` as a name (with that schedule's defaults) or a :class:`Schedule`
(name plus its knobs); the loop binds it to the run's peak LR and length (:class:`LRSchedule`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence, Union

from fastadv._checks import check_choice, check_float

SCHEDULES = ("cyclic", "piecewise", "cosine", "constant")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """An LR schedule by name and its knobs: ``peak`` (cyclic: where the top lies, a fraction
    of training), ``milestones`` (piecewise: epochs where the LR is multiplied by ``decay``;
    None = half and three quarters of training)."""

    name: str = "cyclic"
    peak: float = 0.5
    milestones: Optional[Sequence[float]] = None
    decay: float = 0.1

    def bind(self, lr: float, *, epochs: int, iterations_per_epoch: int) -> "LRSchedule":
        return LRSchedule(self.name, lr, epochs=epochs, iterations_per_epoch=iterations_per_epoch,
                          peak=self.peak, milestones=self.milestones, decay=self.decay)


def as_schedule(value: Union[str, Schedule]) -> Schedule:
    """``schedule=`` of train(): a name or a Schedule."""
    if isinstance(value, Schedule):
        return value
    check_choice("schedule", value, SCHEDULES)
    return Schedule(value)


class LRSchedule:
    """The LR of every iteration of one run (see the module docstring for the formulas)."""


    def __init__(self, name: str, lr_max: float, *, epochs: int, iterations_per_epoch: int,
                 peak: float = 0.5, milestones: Optional[Sequence[float]] = None,
                 decay: float = 0.1):
        check_choice("schedule", name, SCHEDULES)
        lr_max = check_float("lr", lr_max, strictly_positive=True)
        peak = check_float("peak", peak, strictly_positive=True)
        if peak >= 1.0:
            raise ValueError(f"peak must be in (0, 1), got {peak!r}")
        decay = check_float("decay", decay, strictly_positive=True, maximum=1.0)
        self.name, self.lr_max, self.peak, self.decay = name, lr_max, float(peak), float(decay)
        self.iterations_per_epoch = iterations_per_epoch
        self.total = epochs * iterations_per_epoch
        if milestones is None:
            milestones = (epochs / 2, epochs * 3 / 4)
        self.milestones = tuple(sorted(float(m) for m in milestones))

    def __call__(self, iteration: int) -> float:
        t = (iteration + 0.5) / max(self.total, 1)
        if self.name == "cyclic":
            factor = t / self.peak if t <= self.peak else (1.0 - t) / (1.0 - self.peak)
            return self.lr_max * max(factor, 0.0)
        if self.name == "cosine":
            return self.lr_max * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))
        if self.name == "piecewise":
            epoch = iteration / max(self.iterations_per_epoch, 1)
            passed = sum(1 for m in self.milestones if epoch >= m)
            return self.lr_max * self.decay ** passed
        return self.lr_max

    def describe(self) -> dict:
        return {"schedule": self.name, "lr": self.lr_max, "peak": self.peak,
                "milestones": list(self.milestones), "decay": self.decay}
