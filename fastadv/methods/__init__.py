"""Training methods: one file each, a frozen dataclass with the original's defaults and
``loss(model, x, y) -> StepOutput(loss, logits, metrics)``.

    method = fastadv.methods.get("backward_smoothing", eps=8/255, beta=8)
    out = method.loss(model, x, y); out.loss.backward()

Names (each class's docstring gives the paper, its arXiv id, the official repository, the
update and every field's unit, default and source): standard, fast_at (Wong et al. 2020),
pgd_at and pgd2_at (Madry et al. 2018; Rice et al. 2020; Zhang et al. 2022), trades (Zhang
et al. 2019), fast_trades and backward_smoothing (Chen et al. 2022), fast_bat (Zhang et al.
2022), grad_align (Andriushchenko & Flammarion 2020), n_fgsm (de Jorge et al. 2022). Field
names are shared: eps, alpha, steps, beta, gamma, lam, reg, init, bn_mode, noise, clip.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Tuple, Type

from ._base import BN_MODES, INITS, Method, StepOutput
from .backward_smoothing import BackwardSmoothing
from .fast_at import FastAT
from .fast_bat import LINEARIZATIONS, FastBAT, suggest_alpha
from .fast_trades import FastTRADES
from .grad_align import GradAlign
from .n_fgsm import NFGSM
from .pgd_at import PGD2AT, PGDAT
from .standard import Standard
from .trades import TRADES

_REGISTRY: Dict[str, Type[Method]] = {cls.name: cls for cls in (
    Standard, FastAT, PGDAT, PGD2AT, TRADES, FastTRADES, BackwardSmoothing, FastBAT, GradAlign,
    NFGSM)}

__all__ = ["get", "available", "fields", "Method", "StepOutput", "Standard", "FastAT", "PGDAT",
           "PGD2AT", "TRADES", "FastTRADES", "BackwardSmoothing", "FastBAT", "GradAlign",
           "NFGSM", "suggest_alpha", "INITS", "BN_MODES", "LINEARIZATIONS"]


def available() -> Tuple[str, ...]:
    """The method names :func:`get` accepts."""
    return tuple(_REGISTRY)


def _lookup(name) -> Type[Method]:
    if not isinstance(name, str):
        raise TypeError(f"method name must be a str, got {type(name).__name__} ({name!r})")
    key = name.strip().lower().replace("-", "_")
    if key not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[key]


def fields(name: str) -> Tuple[str, ...]:
    """The hyperparameter names of method ``name``."""
    return tuple(f.name for f in dataclasses.fields(_lookup(name)))


def get(name: str, **overrides) -> Method:
    """Method ``name`` with its defaults, some replaced by ``overrides``."""
    cls = _lookup(name)
    valid = fields(name)
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(f"method {cls.name!r} has no hyperparameter(s) {unknown}; "
                         f"valid: {list(valid)}")
    return cls(**overrides)
