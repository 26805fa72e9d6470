"""Adapter to AutoAttack (Croce & Hein, "Reliable evaluation of adversarial robustness with
an ensemble of diverse parameter-free attacks", ICML 2020) through the authors' package,
published on PyPI as ``pyautoattack`` (the optional extra ``fastadv[eval]``).

Never a reimplementation: the numbers reported under the name "autoattack" come from the
package, whose version goes into the evaluation record. "standard" runs APGD-CE, APGD-T
(9 target classes), FAB-T (9 target classes) and Square (5000 queries), each on the points
still robust. The PyPI API differs from the GitHub one: ``batch_size=`` instead of ``bs=``,
no ``verbose``, and ``run_standard_evaluation`` returns ``(x_adv, y_adv)``.

What the adapter adds: with fewer than 10 classes the targeted attacks get C - 1 target
classes (the package would index classes that do not exist), and the verdict per point is
re-checked here: the returned x_adv must lie in the eps-ball and the box, and the point is
broken only if the model misclassifies it.
"""
from __future__ import annotations

import importlib
from typing import Callable, Optional, Sequence, Tuple

import torch

from fastadv._checks import (check_batch, check_choice, check_eps, check_int, check_model,
                             check_pixels)

__all__ = ["autoattack", "package_version", "INSTALL_HINT", "ATTACK_NAMES", "VERSIONS"]

INSTALL_HINT = ("AutoAttack needs the authors' package from PyPI: pip install 'fastadv[eval]' "
                "(or pip install pyautoattack)")
ATTACK_NAMES = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")
VERSIONS = ("standard", "plus", "rand", "custom")


def _import():
    try:
        return importlib.import_module("pyautoattack")
    except ImportError as exc:
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc


def package_version() -> str:
    module = _import()
    version = getattr(module, "__version__", None)
    if version is None:
        from importlib import metadata
        version = metadata.version("pyautoattack")
    return str(version)


def autoattack(model: Callable, x: torch.Tensor, y: torch.Tensor, *, eps: float,
               version: str = "standard", attacks: Optional[Sequence[str]] = None,
               seed: int = 0, batch_size: Optional[int] = None
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run AutoAttack (L-inf) on a batch. ``attacks`` (a subset of ATTACK_NAMES) selects the
    package's "custom" version. Arguments, pixel values included, are checked once per call,
    before the package is imported. Returns ``(x_adv, success)``."""
    check_model("model", model)
    check_batch(x, y)
    check_pixels("x", x)
    eps = check_eps(eps)
    check_choice("version", version, VERSIONS)
    check_int("seed", seed, minimum=0)
    if batch_size is not None:
        check_int("batch_size", batch_size, minimum=1)
    if attacks is not None:
        if isinstance(attacks, str):  # list("apgd-ce") would be a list of letters
            raise TypeError(f"attacks must be a list of attack names, got str ({attacks!r})")
        attacks = list(attacks)
        unknown = [a for a in attacks if a not in ATTACK_NAMES]
        if not attacks or unknown:
            raise ValueError(f"attacks must be a non-empty subset of {ATTACK_NAMES}, got "
                             f"{attacks!r}")
        version = "custom"
    elif version == "custom":
        raise ValueError("version='custom' needs attacks=[...]")
    package = _import()
    x = x.detach()
    if x.shape[0] == 0:
        return x.clone(), torch.zeros(0, dtype=torch.bool, device=x.device)
    with torch.no_grad():
        classes = model(x[:1]).shape[-1]
    adversary = package.AutoAttack(model, attacks=attacks, device=x.device, eps=eps,
                                   norm="Linf", seed=seed, version=version)
    targets = min(9, classes - 1)
    adversary.apgd_targeted.n_target_classes = min(adversary.apgd_targeted.n_target_classes,
                                                   targets)
    adversary.fab.n_target_classes = min(adversary.fab.n_target_classes, targets)
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=batch_size or x.shape[0])
    x_adv = x_adv.to(x.device, x.dtype)
    reach = (x_adv - x).abs().reshape(x.shape[0], -1).amax(dim=1)
    if bool((reach > eps + 1e-5).any()) or bool(((x_adv < -1e-6) | (x_adv > 1 + 1e-6)).any()):
        raise RuntimeError(f"pyautoattack returned points outside the eps-ball or the [0, 1] "
                           f"box (largest L-inf distance {float(reach.max()):.6g} > eps "
                           f"{eps:.6g}); refusing to report them")
    with torch.no_grad():
        success = model(x_adv).argmax(dim=1) != y
    return x_adv, success
