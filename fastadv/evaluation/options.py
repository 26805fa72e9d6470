"""The attack options of fastadv.evaluate() (its extra keyword arguments), their defaults and
their checks, done once before any attack runs:

    alpha               PGD / transfer step size (default eps/4)
    loss                "ce" (default) or "dlr" for PGD, FGSM and transfer
    surrogate           the model the transfer attack crafts its examples on
    autoattack_version  "standard" (default), "plus" or "rand"
    autoattack_attacks  a subset of the package's attacks (its "custom" version)
    rays_early_stop     stop RayS on a point once it is broken at eps (faster, but then the
                        ADBD is only an upper bound; default False)
    rays_rtol           relative tolerance of RayS's binary search (default 1e-3)
    backend             fastadv.ops backend for the steps (default: automatic choice)

Which option feeds which attack is runners.py's business.
"""
from __future__ import annotations

from typing import Any, Dict

from fastadv._checks import (check_bool, check_choice, check_float, check_model,
                             check_optional_float)
from fastadv.attacks import losses

__all__ = ["DEFAULT_OPTIONS", "AUTOATTACK_VERSIONS", "check_options"]

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
# "custom" is not offered: it is what autoattack_attacks selects
AUTOATTACK_VERSIONS = ("standard", "plus", "rand")


def check_options(options: Dict[str, Any]) -> Dict[str, Any]:
    """``options`` merged over DEFAULT_OPTIONS; an unknown name is a TypeError, as for any
    unexpected keyword argument."""
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise TypeError(f"unknown evaluate() option(s) {unknown}; known options: "
                        f"{sorted(DEFAULT_OPTIONS)}")
    merged = {**DEFAULT_OPTIONS, **options}
    check_optional_float("alpha", merged["alpha"], strictly_positive=True)
    losses.get(merged["loss"])  # raises for an unknown loss name
    check_float("rays_rtol", merged["rays_rtol"], strictly_positive=True)
    check_bool("rays_early_stop", merged["rays_early_stop"])
    check_choice("autoattack_version", merged["autoattack_version"], AUTOATTACK_VERSIONS)
    if merged["surrogate"] is not None:
        check_model("surrogate", merged["surrogate"])
    return merged
