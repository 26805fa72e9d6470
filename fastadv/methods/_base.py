"""What every training method shares: the StepOutput it returns, its hyperparameter checks,
and two small autograd helpers.

A method is a frozen dataclass whose fields are its hyperparameters (shared names: eps,
alpha, steps, beta, gamma, lam, reg, init, bn_mode, noise, clip) and whose
``loss(model, x, y)`` returns ONE scalar whose parameter gradient is the method's update
direction (DESIGN.md, layer 1). Hyperparameters that depend on eps (alpha, reg) may be left
None and are resolved from eps by :meth:`Method.resolved`.

Checks follow fastadv's rule (fastadv._checks): a wrong type raises TypeError, a wrong value
ValueError, and the message names the field and the value. The batch-norm mode switch the
methods use while they build a perturbation lives in :mod:`fastadv.models.mode`.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, NamedTuple

import torch
from torch import nn

from fastadv._checks import check_choice, check_eps, check_float, check_int

INITS = ("uniform", "normal", "zero")
BN_MODES = ("train", "eval")


class StepOutput(NamedTuple):
    """loss: the scalar to backpropagate; logits: the model's output on the training
    (adversarial, or clean for standard training) input, for accuracy; metrics: detached
    scalar tensors (left on the device so the loop never syncs per step)."""
    loss: torch.Tensor
    logits: torch.Tensor
    metrics: Dict[str, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class Method:
    """Base of every method. Subclasses declare fields and implement ``loss``."""

    name = "method"  # class attribute: the registry name
    #: whether the loop's catastrophic-overfitting guard is on by default (Fast AT's code)
    guard_by_default = False

    def __post_init__(self):
        fields = {f.name for f in dataclasses.fields(self)}
        if "eps" in fields:
            check_eps(self.eps)
        if "alpha" in fields and self.alpha is not None:
            check_float("alpha", self.alpha, strictly_positive=True)
        if "steps" in fields:
            check_int("steps", self.steps, minimum=1)
        for name in ("beta", "gamma", "reg"):
            if name in fields and getattr(self, name) is not None:
                check_float(name, getattr(self, name), minimum=0.0)
        if "lam" in fields:
            check_float("lam", self.lam, strictly_positive=True)
        if "init" in fields:
            check_choice("init", self.init, INITS)
        if "bn_mode" in fields:
            check_choice("bn_mode", self.bn_mode, BN_MODES)

    def resolved(self) -> dict:
        """Hyperparameters with eps-dependent defaults filled in (what the run used)."""
        return {"method": self.name, **dataclasses.asdict(self)}

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        raise NotImplementedError


def input_grad(loss: torch.Tensor, x_adv: torch.Tensor, *, create_graph: bool = False):
    """d loss / d x_adv only: no parameter gradient is computed or accumulated."""
    (grad,) = torch.autograd.grad(loss, x_adv, create_graph=create_graph)
    return grad


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.detach().argmax(dim=1) == y).float().mean()
