"""PGD adversarial training (Madry et al., ICLR 2018, with the PyTorch defaults of Rice et
al., ICML 2020) and PGD-2-AT, the two-step baseline of the Fast-BAT paper (Zhang et al.,
ICML 2022). The updates and defaults are documented on :class:`PGDAT` and :class:`PGD2AT`."""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch.nn.functional as F

from fastadv import ops
from fastadv.models.mode import bn_mode

from ._base import Method, StepOutput, input_grad


@dataclasses.dataclass(frozen=True)
class PGDAT(Method):
    """PGD-AT: K signed, projected steps on the cross-entropy from a uniform random start.

    Papers: Aleksander Madry, Aleksandar Makelov, Ludwig Schmidt, Dimitris Tsipras, Adrian
    Vladu, "Towards deep learning models resistant to adversarial attacks", ICLR 2018,
    arXiv 1706.06083 (the method; TensorFlow code https://github.com/MadryLab/cifar10_challenge);
    Leslie Rice, Eric Wong, J. Zico Kolter, "Overfitting in adversarially robust deep
    learning", ICML 2020, arXiv 2002.11569 (best checkpoint by held-out PGD accuracy).
    Official code the defaults follow: https://github.com/locuslab/robust_overfitting
    (train_cifar.py, --epsilon 8 --pgd-alpha 2 --attack-iters 10, uniform start clamped to
    the box, model in train mode while attacking; checked at commit 263b8269a30f).

    Update (P(d) = clamp d to [-eps, eps], then to the pixel box [-x, 1 - x]; the attack
    runs in ``bn_mode``, the loss in train mode):
        d = P(U(-eps, eps))
        K = steps times:  d = P(d + alpha * sign(grad_d CE(f(x + d), y)))
        loss = CE(f(x + d), y)
    Passes: K + 1 forwards, K input-only backwards + 1 backward. Metrics: ``ce_adv``.
    The best-checkpoint selection of Rice et al. is the training loop's held-out validation,
    not a field.

    Attributes:
        eps (float, default 8/255): L-inf radius in pixel units of [0, 1] images (the code's
            --epsilon 8).
        alpha (float or None, default 2/255): step size in pixel units (the code's
            --pgd-alpha 2); None resolves to eps / 4, the same ratio at other radii.
        steps (int, default 10): number of PGD steps K (the code's --attack-iters 10).
        init (str, default "uniform"): the start: "uniform" (U(-eps, eps) clamped to the
            box, as in the code), "zero" or "normal".
        bn_mode (str, default "train"): batch-norm mode while the perturbation is built;
            "train" as in the official code.
    """
    eps: float = 8 / 255
    alpha: Optional[float] = 2 / 255  # None: eps / 4 (the PGD-10 ratio at eps 8/255)
    steps: int = 10
    init: str = "uniform"
    bn_mode: str = "train"

    name = "pgd_at"

    def step_size(self) -> float:
        return self.eps / 4 if self.alpha is None else self.alpha

    def resolved(self) -> dict:
        return {**super().resolved(), "alpha": self.step_size()}

    def loss(self, model, x, y) -> StepOutput:
        alpha = self.step_size()
        with bn_mode(model, self.bn_mode):
            x_adv = ops.random_start(x, self.eps, kind=self.init)
            for _ in range(self.steps):
                x_adv.requires_grad_(True)
                grad = input_grad(F.cross_entropy(model(x_adv), y), x_adv)
                x_adv = ops.pgd_step(x_adv.detach(), grad, x, alpha=alpha, eps=self.eps)
        logits = model(x_adv)
        ce = F.cross_entropy(logits, y)
        return StepOutput(ce, logits, {"ce_adv": ce.detach()})


@dataclasses.dataclass(frozen=True)
class PGD2AT(PGDAT):
    """PGD-2-AT: PGD-AT with two steps of eps / 2, a baseline of the Fast-BAT paper.

    Paper: Yihua Zhang, Guanhua Zhang, Prashant Khanduri, Mingyi Hong, Shiyu Chang, Sijia
    Liu, "Revisiting and advancing fast adversarial training through the lens of bi-level
    optimization", ICML 2022, arXiv 2112.12376 (PGD-2-AT is one of its baselines; the method
    itself is PGD-AT of Madry et al., arXiv 1706.06083).
    Official code: https://github.com/OPTML-Group/Fast-BAT (train.py --mode pgd
    --attack_step 2 sets the step to 0.5 * eps, checked at commit 32bde537cc5b; trainer.py
    starts from a uniform point clamped to the box with the model in train mode, checked at
    commit 01242017fc77).

    Update: as :class:`PGDAT` with K = 2:
        d = P(U(-eps, eps));  twice: d = P(d + alpha * sign(grad_d CE(f(x + d), y)))
        loss = CE(f(x + d), y)
    Passes: 3 forwards, 2 input-only backwards + 1 backward. Metrics: ``ce_adv``.

    Attributes:
        eps (float, default 8/255): L-inf radius in pixel units of [0, 1] images (the code's
            --attack_eps 8).
        alpha (float or None, default None): step size in pixel units; None resolves to
            eps / 2 (4/255 at 8/255), the code's 0.5 * eps for two steps.
        steps (int, default 2): number of PGD steps K (the code's --attack_step 2).
        init (str, default "uniform"): the start: "uniform" (U(-eps, eps) clamped to the
            box, as in the code), "zero" or "normal".
        bn_mode (str, default "train"): batch-norm mode while the perturbation is built;
            "train" as in the official code.
    """
    alpha: Optional[float] = None
    steps: int = 2

    name = "pgd2_at"

    def step_size(self) -> float:
        return self.eps / 2 if self.alpha is None else self.alpha
