"""fastadv.attacks: the L-inf attacks as public functions, one file each.

- :func:`pgd`, :func:`fgsm` (pgd.py): white-box PGD with restarts (Madry et al. 2018) and
  FGSM (Goodfellow et al. 2015), steps through fastadv.ops; :func:`default_alpha` is their
  step size when none is given (eps/4).
- :func:`rays` (rays.py): the hard-label RayS attack (Chen & Gu, KDD 2020) and its ADBD.
- :func:`autoattack` (autoattack.py): AutoAttack (Croce & Hein 2020) via ``pyautoattack``.
- :func:`transfer` (transfer.py): PGD crafted on a surrogate model.
- :func:`gradient_alignment` (gradient_alignment.py): the catastrophic-overfitting indicator.
- losses.py: the losses the white-box attacks ascend ("ce", "dlr").
- _pgd_shared.py: the PGD run and argument checks that pgd.py and transfer.py share.

Every attack checks its arguments once at entry, pixel values included (NaN or values
outside [0, 1] raise ValueError; one host read per call, never per step). Running attacks
over a data set, attack specs ("pgd-50-10") and the evaluation record live in
fastadv.evaluation.
"""
from fastadv.attacks._pgd_shared import default_alpha
from fastadv.attacks.autoattack import autoattack
from fastadv.attacks.gradient_alignment import gradient_alignment
from fastadv.attacks.pgd import fgsm, pgd
from fastadv.attacks.rays import RaySResult, rays
from fastadv.attacks.transfer import transfer

__all__ = ["pgd", "fgsm", "default_alpha", "rays", "RaySResult", "autoattack", "transfer",
           "gradient_alignment"]
