"""The optimizer of a run: SGD with momentum 0.9 and weight decay 5e-4 by default (the
settings of Fast AT's and Fast-BAT's code), or whatever the caller builds."""
from __future__ import annotations

from typing import Sequence

import torch

SGD_DEFAULTS = dict(momentum=0.9, weight_decay=5e-4)


def make_optimizer(optimizer, params: Sequence[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """``optimizer``: "sgd" (SGD_DEFAULTS), a torch.optim.Optimizer class (built with its own
    defaults and ``lr``) or a factory ``params -> optimizer``. The LR schedule overwrites every
    param group's lr at every iteration."""
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, **SGD_DEFAULTS)
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer(params, lr=lr)
    if callable(optimizer):
        made = optimizer(params)
        if not isinstance(made, torch.optim.Optimizer):
            raise TypeError(f"optimizer factory returned {type(made).__name__}, not a "
                            "torch.optim.Optimizer")
        return made
    raise ValueError(f"optimizer must be 'sgd', a torch.optim.Optimizer class or a factory "
                     f"params -> optimizer, got {optimizer!r}")
