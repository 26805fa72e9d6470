"""Standard (non-adversarial) training: loss = CE(f(x), y), the baseline every robust method
is compared against."""
from __future__ import annotations

import dataclasses

import torch.nn.functional as F

from ._base import Method, StepOutput


@dataclasses.dataclass(frozen=True)
class Standard(Method):
    """Standard training: cross-entropy on the clean batch, no perturbation.

    Paper: none of its own; it is the clean baseline of every robust-training paper. The
    reference setting is the ``--attack none`` mode of the code of Leslie Rice, Eric Wong,
    J. Zico Kolter, "Overfitting in adversarially robust deep learning", ICML 2020,
    arXiv 2002.11569.
    Official code: https://github.com/locuslab/robust_overfitting (train_cifar.py, whose
    ``--attack none`` sets the perturbation to zero; checked at commit 263b8269a30f).

    Update (model in train mode):
        loss = CE(f(x), y)        (mean over the batch)
    Passes: 1 forward, 1 backward. Metrics: ``ce``.

    Attributes:
        eps (float, default 8/255): L-inf radius in pixel units of [0, 1] images. Not used
            by the loss; it tells the training loop at which radius to validate robustness.
            8/255 is the CIFAR-10 radius of the papers (robust_overfitting's --epsilon 8).
    """
    eps: float = 8 / 255

    name = "standard"

    def loss(self, model, x, y) -> StepOutput:
        logits = model(x)
        ce = F.cross_entropy(logits, y)
        return StepOutput(ce, logits, {"ce": ce.detach()})
