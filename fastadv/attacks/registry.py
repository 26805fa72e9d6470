"""From a parsed AttackSpec and evaluate()'s options to one batch of attack results.

This is the only place that knows which option feeds which attack, so evaluate() stays a
loop over specs and batches. Options (keyword arguments of evaluate):

    alpha               PGD / transfer step size (default eps/4)
    loss                "ce" (default) or "dlr" for PGD, FGSM and transfer
    surrogate           the model the transfer attack crafts its examples on
    autoattack_version  "standard" (default), "plus" or "rand"
    autoattack_attacks  a subset of the package's attacks (its "custom" version)
    rays_early_stop     stop RayS on a point once it is broken at eps (faster, but then the
                        ADBD is only an upper bound; default False)
    rays_rtol           relative tolerance of RayS's binary search (default 1e-3)
    backend             fastadv.ops backend for the steps (default: automatic choice)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch

from fastadv.attacks import losses
from fastadv._checks import check_model, check_optional_float, check_float
from fastadv.attacks._pgd_shared import default_alpha
from fastadv.attacks.autoattack import autoattack, package_version
from fastadv.attacks.pgd import fgsm, pgd
from fastadv.attacks.rays import rays
from fastadv.attacks.spec import AttackSpec
from fastadv.attacks.transfer import transfer
from fastadv._checks import check_bool

__all__ = ["DEFAULT_OPTIONS", "check_options", "BatchOutcome", "run_batch", "settings"]

DEFAULT_OPTIONS: Dict[str, Any] = {
    "alpha": None,
    "loss": "ce",
    "surrogate": None,
    "autoattack_version": "standard",
    "autoattack_attacks": None,
    "rays_early_stop": False,
    "rays_rtol": 1e-3,
    "backend": None,
}


def check_options(options: Dict[str, Any]) -> Dict[str, Any]:
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise TypeError(f"unknown evaluate() option(s) {unknown}; known options: "
                        f"{sorted(DEFAULT_OPTIONS)}")
    merged = {**DEFAULT_OPTIONS, **options}
    check_optional_float("alpha", merged["alpha"], strictly_positive=True)
    losses.get(merged["loss"])  # raises for an unknown loss name
    check_float("rays_rtol", merged["rays_rtol"], strictly_positive=True)
    check_bool("rays_early_stop", merged["rays_early_stop"])
    if merged["autoattack_version"] not in ("standard", "plus", "rand"):
        raise ValueError(f"autoattack_version must be 'standard', 'plus' or 'rand', got "
                         f"{merged['autoattack_version']!r}")
    if merged["surrogate"] is not None:
        check_model("surrogate", merged["surrogate"])
    return merged


@dataclass
class BatchOutcome:
    success: torch.Tensor                    # bool [B]: the attack broke the point
    distance: Optional[torch.Tensor] = None  # RayS: L-inf distance per point
    queries: Optional[torch.Tensor] = None   # RayS: queries spent per point


def run_batch(spec: AttackSpec, model, x: torch.Tensor, y: torch.Tensor, *, eps: float,
              options: Dict[str, Any], seed: int,
              generator: Optional[torch.Generator]) -> BatchOutcome:
    """Attack one batch of points (the caller passes only points classified correctly)."""
    kind = spec.kind
    if kind == "clean":
        with torch.no_grad():
            return BatchOutcome(model(x).argmax(dim=1) != y)
    if kind == "fgsm":
        return BatchOutcome(fgsm(model, x, y, eps=eps, loss=options["loss"],
                                 backend=options["backend"])[1])
    if kind == "pgd":
        return BatchOutcome(pgd(model, x, y, eps=eps, steps=spec.steps, restarts=spec.restarts,
                                alpha=options["alpha"], loss=options["loss"],
                                generator=generator, backend=options["backend"])[1])
    if kind == "transfer":
        return BatchOutcome(transfer(model, options["surrogate"], x, y, eps=eps,
                                     steps=spec.steps, restarts=spec.restarts,
                                     alpha=options["alpha"], loss=options["loss"],
                                     generator=generator, backend=options["backend"])[1])
    if kind == "autoattack":
        return BatchOutcome(autoattack(
            model, x, y, eps=eps, version=options["autoattack_version"],
            attacks=options["autoattack_attacks"], seed=seed)[1])
    if kind == "rays":
        result = rays(model, x, y, queries=spec.queries, eps=eps,
                      early_stop=options["rays_early_stop"], rtol=options["rays_rtol"])
        return BatchOutcome(result.success(eps), result.distance, result.queries)
    raise ValueError(f"no runner for attack kind {kind!r}")


def settings(spec: AttackSpec, options: Dict[str, Any], eps: float) -> Dict[str, Any]:
    """The attack's parameters as they go into the evaluation record."""
    if spec.kind in ("pgd", "transfer"):
        out = {"steps": spec.steps, "restarts": spec.restarts,
               "alpha": default_alpha(options["alpha"], eps),
               "loss": options["loss"]}
        if spec.kind == "transfer":
            surrogate = options["surrogate"]
            out["surrogate"] = None if surrogate is None else type(surrogate).__name__
        return out
    if spec.kind == "fgsm":
        return {"alpha": eps, "loss": options["loss"]}
    if spec.kind == "rays":
        return {"queries": spec.queries, "early_stop": options["rays_early_stop"],
                "rtol": options["rays_rtol"]}
    if spec.kind == "autoattack":
        attacks = options["autoattack_attacks"]
        return {"version": "custom" if attacks else options["autoattack_version"],
                "attacks": list(attacks) if attacks else None,
                "package": "pyautoattack", "package_version": package_version()}
    return {}
