"""Warnings for evaluations that are likely wrong, each naming the likely fix.

The first two mirror checks that AutoAttack's authors run before an evaluation (Croce &
Hein 2020, "flags"; their third, inputs outside [0, 1], is an error here, raised where data
enters evaluate(): see inputs.py); the last is the classic sign of gradient masking (Athalye,
Carlini & Wagner, ICML 2018): a black-box attack, which uses no gradients, must not do better
than a white-box one that does.
"""
from __future__ import annotations

import os
import sys
import warnings
from typing import Callable, Dict

import torch

from fastadv.evaluation.specs import BLACK_BOX

__all__ = ["warn_if_probabilities", "warn_if_randomized", "warn_if_gradient_masking"]


def _user_stacklevel() -> int:
    """The warnings stacklevel of the first caller outside fastadv (and torch, whose
    decorators such as no_grad wrap fastadv functions), so that a warning points at the
    user's line however deep in train() or evaluate() it is raised."""
    packages = tuple(os.path.dirname(os.path.abspath(module.__file__)) + os.sep
                     for module in (sys.modules["fastadv"], torch))
    frame, level = sys._getframe(2), 2  # level 1 is the function that warns
    while frame is not None and frame.f_code.co_filename.startswith(packages):
        frame, level = frame.f_back, level + 1
    return level


def warn_if_probabilities(logits: torch.Tensor, *, atol: float = 1e-5) -> bool:
    """Rows all non-negative and summing to 1 look like softmax outputs, which flatten the
    cross-entropy's gradient: PGD then looks stronger-than-it-is robust, and training losses
    (which take logits) train towards nothing. Shared by evaluate() and train()."""
    if logits.numel() == 0:
        return False
    logits = logits.detach().float()
    looks = bool((logits >= -atol).all()) and bool(
        ((logits.sum(dim=-1) - 1).abs() <= 1e-4).all())
    if looks:
        warnings.warn("the model's outputs look like probabilities (non-negative rows summing "
                      "to 1), but attacks and training losses need logits: remove the final "
                      "softmax from the model", RuntimeWarning, stacklevel=_user_stacklevel())
    return looks


@torch.no_grad()
def warn_if_randomized(model: Callable, x: torch.Tensor, first: torch.Tensor, *,
                       rtol: float = 1e-4) -> bool:
    """Two forwards of the same input in eval mode must agree; a randomized model needs an
    attack that averages over its randomness (EOT, e.g. autoattack_version='rand')."""
    second = model(x).detach().float()
    first = first.detach().float()
    scale = first.abs().max().clamp(min=1.0)
    randomized = bool(((first - second).abs().max() > rtol * scale)) if first.numel() else False
    if randomized:
        warnings.warn("the model is randomized: two forwards of the same input in eval mode "
                      "differ. Check that dropout/noise layers respect model.eval(); for a "
                      "truly randomized defense use an EOT attack (autoattack_version='rand')",
                      RuntimeWarning, stacklevel=3)
    return randomized


def warn_if_gradient_masking(robust: Dict[str, float], kinds: Dict[str, str], n: int) -> bool:
    """``robust``: spec -> robust accuracy; ``kinds``: spec -> attack kind."""
    white = {s: a for s, a in robust.items() if kinds[s] == "pgd"}
    black = {s: a for s, a in robust.items() if kinds[s] in BLACK_BOX}
    if not white or not black:
        return False
    best_white_spec = min(white, key=white.get)
    # when AutoAttack already ran, "run autoattack" would send the user round in a circle
    advice = ("report the lowest number (the worst case, which includes autoattack's)"
              if "autoattack" in kinds.values() else "run autoattack")
    tolerance = 0.5 / max(n, 1)  # below half a point: numerically equal
    masked = False
    for spec, acc in black.items():
        if acc < white[best_white_spec] - tolerance:
            masked = True
            warnings.warn(f"black-box {spec!r} robust accuracy {acc:.4f} is below white-box "
                          f"{best_white_spec!r}'s {white[best_white_spec]:.4f}: a sign of "
                          f"gradient masking. Do not trust the PGD number; {advice} and "
                          f"check the model for non-differentiable or saturating layers",
                          RuntimeWarning, stacklevel=3)
    return masked
