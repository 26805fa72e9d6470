"""Put a model in eval mode for an evaluation and restore exactly the modes it had.

``model.train(previous)`` would flatten a model whose submodules were in mixed modes (e.g. a
frozen, eval-mode backbone inside a training model), so every submodule's flag is saved and
restored one by one, also when the evaluation raises.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    saved = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in saved:
            module.training = training
