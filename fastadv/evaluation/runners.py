"""From a parsed AttackSpec and evaluate()'s checked options (options.py) to one batch of
attack results, and to the attack's settings as the evaluation record names them.

This is the only place that knows which option feeds which attack, so evaluate() stays a
loop over specs and batches. The attacks themselves are fastadv.attacks' public functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch

from fastadv.attacks import autoattack, default_alpha, fgsm, pgd, rays, transfer
from fastadv.attacks.autoattack import package_version
from fastadv.evaluation.specs import AttackSpec

__all__ = ["BatchOutcome", "run_batch", "settings"]


@dataclass
class BatchOutcome:
    """What one attack found on one batch."""
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
