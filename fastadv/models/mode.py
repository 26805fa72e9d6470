"""Switch a model's train/eval mode for a while and restore exactly the modes it had.

Every submodule's flag is saved and restored one by one, also when the block raises, so a
model whose submodules were in mixed modes (e.g. a frozen, eval-mode backbone inside a
training model) keeps them. The training methods use :func:`bn_mode` while they build a
perturbation (batch-norm statistics in train or eval mode, as each original code does);
evaluation and validation use :func:`eval_mode`.
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Iterator

from torch import nn


@contextlib.contextmanager
def bn_mode(model: nn.Module, mode: str) -> Iterator[None]:
    """Put ``model`` in train() (mode "train") or eval() (mode "eval") inside the block, then
    restore each submodule's own flag."""
    flags = [(m, m.training) for m in model.modules()]
    model.train(mode == "train")
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def eval_mode(model: Callable) -> ContextManager[None]:
    """:func:`bn_mode` "eval" for an nn.Module; nothing for a plain callable (it has no mode)."""
    if isinstance(model, nn.Module):
        return bn_mode(model, "eval")
    return contextlib.nullcontext()
