"""fastadv: fast adversarial training for PyTorch.

Backward Smoothing (Chen et al., AAAI 2022) and Fast-BAT (Zhang et al., ICML 2022) with the
baselines they are measured against, honest robustness evaluation, and fused kernels for the
per-step work behind :mod:`fastadv.ops`.

Layers (one folder each, DESIGN.md): ``training`` (train(), the one loop), ``evaluation``
(evaluate()), ``methods`` (one file per method), ``attacks``, ``ops`` (the fused kernels'
validated front), ``models``, ``data``, ``cli``; ``checkpoint`` is the checkpoint file format
shared by training, evaluation and users (load_model).

"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

from fastadv.training import train  # noqa: E402
from fastadv.evaluation import evaluate  # noqa: E402

# imported on first use, so `import fastadv` stays light
_SUBMODULES = ("ops", "methods", "attacks", "models", "data", "checkpoint", "training",
               "evaluation", "cli")

__all__ = ["train", "evaluate", *_SUBMODULES, "__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"fastadv.{name}")
    raise AttributeError(f"module 'fastadv' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
