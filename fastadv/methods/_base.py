"""What every training method shares: the StepOutput it returns, hyperparameter checks, and
the batch-norm mode switch used while a perturbation is built.

A method is a frozen dataclass whose fields are its hyperparameters (shared names: eps,
alpha, steps, beta, gamma, lam, reg, init, bn_mode) and whose ``loss(model, x, y)`` returns
ONE scalar whose parameter gradient is the method's update direction (DESIGN.md, layer 1).
Hyperparameters that depend on eps (alpha, reg) may be left None and are resolved from eps
by :meth:`Method.resolved`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import numbers
from typing import Dict, Iterator, NamedTuple

import torch
from torch import nn

from fastadv.ops._validate import check_choice, check_float

INITS = ("uniform", "normal", "zero")
BN_MODES = ("train", "eval")


class StepOutput(NamedTuple):
    """loss: the scalar to backpropagate; logits: the model's output on the training
    (adversarial, or clean for standard training) input, for accuracy; metrics: detached
    scalar tensors (left on the device so the loop never syncs per step)."""
    loss: torch.Tensor
    logits: torch.Tensor
    metrics: Dict[str, torch.Tensor]


def check_real(name: str, value, *, low=None, high=None, positive=False) -> float:
    """A real hyperparameter, checked by the same rules (and messages) as the ops' scalars."""
    return check_float(name, value, minimum=low, maximum=high, strictly_positive=positive)


def check_steps(value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"steps must be an integer >= 1, got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class Method:
    """Base of every method. Subclasses declare fields and implement ``loss``."""

    name = "method"  # class attribute: the registry name
    #: whether the loop's catastrophic-overfitting guard is on by default (Fast AT's code)
    guard_by_default = False

    def __post_init__(self):
        fields = {f.name for f in dataclasses.fields(self)}
        if "eps" in fields:
            check_real("eps", self.eps, low=0.0, high=1.0)
        if "alpha" in fields and self.alpha is not None:
            check_real("alpha", self.alpha, positive=True)
        if "steps" in fields:
            check_steps(self.steps)
        for name in ("beta", "gamma", "reg"):
            if name in fields and getattr(self, name) is not None:
                check_real(name, getattr(self, name), low=0.0)
        if "lam" in fields:
            check_real("lam", self.lam, positive=True)
        if "init" in fields:
            check_choice("init", self.init, INITS)
        if "bn_mode" in fields:
            check_choice("bn_mode", self.bn_mode, BN_MODES)

    def resolved(self) -> dict:
        """Hyperparameters with eps-dependent defaults filled in (what the run used)."""
        return {"method": self.name, **dataclasses.asdict(self)}

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> StepOutput:
        raise NotImplementedError


@contextlib.contextmanager
def bn_mode(model: nn.Module, mode: str) -> Iterator[None]:
    """Put the model in train() or eval() while a perturbation is built, then restore each
    submodule's own flag (a user may keep some BN layers frozen in eval on purpose)."""
    flags = [(m, m.training) for m in model.modules()]
    model.train(mode == "train")
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def input_grad(loss: torch.Tensor, x_adv: torch.Tensor, *, create_graph: bool = False):
    """d loss / d x_adv only: no parameter gradient is computed or accumulated."""
    (grad,) = torch.autograd.grad(loss, x_adv, create_graph=create_graph)
    return grad


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.detach().argmax(dim=1) == y).float().mean()
