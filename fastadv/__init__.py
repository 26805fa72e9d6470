"""fastadv: fast adversarial training for PyTorch.

Backward Smoothing (Chen et al., AAAI 2022) and Fast-BAT (Zhang et al., ICML 2022) with the
baselines they are measured against, honest robustness evaluation, and fused kernels for the
per-step work behind :mod:`fastadv.ops`.

"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Imported eagerly on purpose: the functions share their names with their modules, and binding
# them here, before anything can import fastadv.train as a module, keeps fastadv.train the
# function in every import order (the import system sets the attribute only on first load).
from fastadv.train import train  # noqa: E402
from fastadv.evaluate import evaluate  # noqa: E402

_SUBMODULES = ("ops", "methods", "attacks", "models", "data")

__all__ = ["train", "evaluate", *_SUBMODULES, "__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"fastadv.{name}")
    raise AttributeError(f"module 'fastadv' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
