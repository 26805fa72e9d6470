"""Put a model in eval mode for an evaluation and restore exactly the modes it had.

The mechanism is the one the training methods use (fastadv.methods._base.bn_mode): every
submodule's flag is saved and restored one by one, also when the evaluation raises, so a model
whose submodules were in mixed modes (e.g. a frozen, eval-mode backbone inside a training
model) keeps them. A model that is a plain callable, not an nn.Module, has no mode to set.
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

from torch import nn

from fastadv.methods._base import bn_mode


def eval_mode(model: Callable) -> ContextManager[None]:
    if isinstance(model, nn.Module):
        return bn_mode(model, "eval")
    return contextlib.nullcontext()
