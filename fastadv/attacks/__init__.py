"""fastadv.attacks: the attacks behind fastadv.evaluate().

- :func:`pgd`, :func:`fgsm` (pgd.py): white-box L-inf PGD with restarts (Madry et al. 2018)
  and FGSM (Goodfellow et al. 2015), steps through fastadv.ops.
- :func:`rays` (rays.py): the hard-label RayS attack (Chen & Gu, KDD 2020) and its ADBD.
- :func:`autoattack` (autoattack.py): AutoAttack (Croce & Hein 2020) via ``pyautoattack``.
- :func:`transfer` (transfer.py): PGD crafted on a surrogate model.
- :func:`gradient_alignment` (gradient_alignment.py): the catastrophic-overfitting indicator.
- :func:`parse_spec` (spec.py): "pgd-50-10", "rays-1000", ... as used by evaluate().
"""
from fastadv.attacks.autoattack import autoattack
from fastadv.attacks.gradient_alignment import gradient_alignment
from fastadv.attacks.pgd import fgsm, pgd
from fastadv.attacks.rays import RaySResult, rays
from fastadv.attacks.spec import AttackSpec, parse_spec, parse_specs
from fastadv.attacks.transfer import transfer

__all__ = ["pgd", "fgsm", "rays", "RaySResult", "autoattack", "transfer",
           "gradient_alignment", "AttackSpec", "parse_spec", "parse_specs"]
