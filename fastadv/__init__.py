"""fastadv: fast adversarial training for PyTorch.

Backward Smoothing (Chen et al., AAAI 2022) and Fast-BAT (Zhang et al., ICML 2022) with the
baselines they are measured against, honest robustness evaluation, and fused kernels for the
per-step work behind :mod:`fastadv.ops`.

Submodules load on first use so that ``import fastadv`` stays cheap.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("ops", "methods", "attacks", "models", "data")
_FUNCTIONS = {"train": "fastadv.train", "evaluate": "fastadv.evaluate"}

__all__ = ["train", "evaluate", *_SUBMODULES, "__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"fastadv.{name}")
    if name in _FUNCTIONS:
        # the function shadows its module of the same name on purpose: fastadv.train(...)
        module = importlib.import_module(_FUNCTIONS[name])
        fn = getattr(module, name)
        globals()[name] = fn
        return fn
    raise AttributeError(f"module 'fastadv' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES) + list(_FUNCTIONS))
