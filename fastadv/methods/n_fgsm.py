"""N-FGSM - de Jorge, Bibi, Volpi, Sanyal, Torr, Rogez, Dokania, "Make some noise: reliable
and efficient single-step adversarial training", NeurIPS 2022. The update and its defaults
are documented on :class:`NFGSM`."""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch.nn.functional as F

from fastadv import ops
from fastadv._checks import check_float, check_optional_float
from fastadv.models.mode import bn_mode

from ._base import Method, StepOutput, input_grad


@dataclasses.dataclass(frozen=True)
class NFGSM(Method):
    """N-FGSM: one FGSM step from strong uniform noise (twice the radius), with no
    projection back onto the eps-ball; Fast AT's cost, no regulariser, and no catastrophic
    overfitting at large radii where Fast AT collapses.

    Paper: Pau de Jorge, Adel Bibi, Riccardo Volpi, Amartya Sanyal, Philip H. S. Torr,
    Gregory Rogez, Puneet K. Dokania, "Make some noise: reliable and efficient single-step
    adversarial training", NeurIPS 2022, arXiv 2202.01181.
    Official code: https://github.com/pdejorge/N-FGSM (train.py: --unif 2 --alpha 8
    --epsilon 8 --clip -1, i.e. noise U(-2 eps, 2 eps), step alpha = eps and no clipping,
    model in train mode throughout; experiments.sh keeps alpha = eps and k = 2 for
    PreActResNet-18 at every CIFAR radius up to 16/255; checked at commit d1cf00406880
    (train.py), whose attack step equals the one at 15f590756cb5).

    Update (all perturbations are also clamped to the pixel box, 0 <= x + d <= 1; the
    perturbation is built in ``bn_mode``, the loss in train mode):
        eta   = U(-k * eps, k * eps), k = noise, then clamped to the box
        g     = grad_eta CE(f(x + eta), y)            (mean CE, input gradient only)
        delta = eta + alpha * sign(g), then clamped to the box
                clip None: no projection onto an eps-ball, so |delta| can reach
                           k * eps + alpha ((k + 1) * eps at the default alpha)
                clip c:    delta also clamped to [-c * eps, c * eps]
                           (c = 1 is a Fast-AT-like projection)
        loss  = CE(f(x + delta), y)
    Both go through fastadv.ops: random_start with radius k * eps, then one pgd_step whose
    projection radius is k * eps + alpha when clip is None (wide enough that it never
    clips, so the fused projected step serves unchanged) or c * eps with clip c. The
    official code clamps to the box before the optional clip; the two clamps are intervals
    that contain 0, so either order gives the same result.
    Passes: 2 forwards, 2 backwards (the first one input-only). Metrics: ``ce_adv``.

    Attributes:
        eps (float, default 8/255): the radius the noise and the step are measured in, in
            pixel units of [0, 1] images (the code's --epsilon 8). Without ``clip`` the
            training perturbation is NOT confined to this radius.
        alpha (float or None, default None): FGSM step in pixel units; None resolves to eps,
            8/255 at eps 8/255 (the code's --alpha 8 with --epsilon 8).
        noise (float, default 2.0): k, the half-width of the uniform noise as a multiple of
            eps (the code's --unif 2; 0 gives plain FGSM from x).
        clip (float or None, default None): c, the radius of an optional projection as a
            multiple of eps; None projects onto no eps-ball (the code's --clip -1).
        bn_mode (str, default "train"): batch-norm mode while the perturbation is built;
            "train" as in the official code.
    """
    eps: float = 8 / 255
    alpha: Optional[float] = None  # None: eps
    noise: float = 2.0
    clip: Optional[float] = None  # None: no projection onto an eps-ball
    bn_mode: str = "train"

    name = "n_fgsm"

    def __post_init__(self):
        super().__post_init__()
        check_float("noise", self.noise, minimum=0.0)
        check_optional_float("clip", self.clip, strictly_positive=True)

    def step_size(self) -> float:
        return self.eps if self.alpha is None else self.alpha

    def projection_radius(self) -> float:
        """The radius pgd_step projects onto: k * eps + alpha (never reached) without clip,
        else c * eps."""
        if self.clip is None:
            return self.noise * self.eps + self.step_size()
        return self.clip * self.eps

    def resolved(self) -> dict:
        return {**super().resolved(), "alpha": self.step_size()}

    def loss(self, model, x, y) -> StepOutput:
        alpha = self.step_size()
        with bn_mode(model, self.bn_mode):
            x_noisy = ops.random_start(x, self.noise * self.eps, kind="uniform")
            x_noisy.requires_grad_(True)
            grad = input_grad(F.cross_entropy(model(x_noisy), y), x_noisy)
            x_adv = ops.pgd_step(x_noisy.detach(), grad, x, alpha=alpha,
                                 eps=self.projection_radius())
        logits = model(x_adv)
        ce = F.cross_entropy(logits, y)
        return StepOutput(ce, logits, {"ce_adv": ce.detach()})
