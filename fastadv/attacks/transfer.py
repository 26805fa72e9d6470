"""Transfer attack: PGD crafted on a surrogate model, evaluated on the target model.

A black-box check against gradient masking (Athalye, Carlini & Wagner, "Obfuscated Gradients
Give a False Sense of Security", ICML 2018): if examples built on another model break the
target more often than white-box PGD on the target itself, the target's gradients are
uninformative and its PGD robust accuracy is not to be trusted.

Each restart runs the full K steps of PGD (Madry et al. 2018, uniform start, signed steps
through fastadv.ops) on the surrogate, without stopping when the surrogate is fooled, since a
stronger surrogate example transfers better; a point counts as broken when the final example
of any restart is misclassified by the target. The PGD run is the one pgd.py uses
(_pgd_shared.py); arguments, pixel values included, are checked once per call.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch

from fastadv import ops
from fastadv._checks import check_model
from fastadv.attacks._pgd_shared import check_pgd_arguments, pgd_run, unbroken
from fastadv.models.mode import eval_mode

__all__ = ["transfer"]


def transfer(model: Callable, surrogate: Callable, x: torch.Tensor, y: torch.Tensor, *,
             eps: float, steps: int = 20, restarts: int = 1, alpha: Optional[float] = None,
             loss: str = "ce", generator: Optional[torch.Generator] = None,
             backend: Optional[str] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Returns ``(x_adv, success)``: success[i] when the target misclassifies x_adv[i] (or x[i]).
    The surrogate runs in eval mode and its mode is restored afterwards."""
    check_model("model", model)
    if surrogate is None:
        raise ValueError("the transfer attack needs a surrogate model: pass surrogate=<model> "
                         "(e.g. evaluate(..., attacks=['transfer'], surrogate=other_model))")
    check_model("surrogate", surrogate)
    eps, alpha, loss_fn = check_pgd_arguments(x, y, eps=eps, steps=steps, restarts=restarts,
                                              alpha=alpha, loss=loss, min_steps=1)
    x = x.detach()
    with torch.no_grad():
        success = model(x).argmax(dim=1) != y
    x_adv = x.clone()
    if eps == 0.0:
        return x_adv, success
    with eval_mode(surrogate):
        for todo in unbroken(success, restarts):
            x_sub, y_sub = x[todo], y[todo]
            start = ops.random_start(x_sub, eps, generator=generator, backend=backend)
            crafted, _ = pgd_run(surrogate, x_sub, y_sub, eps=eps, steps=steps, alpha=alpha,
                                 loss_fn=loss_fn, start=start, stop_on_success=False,
                                 backend=backend)
            with torch.no_grad():
                hit = model(crafted).argmax(dim=1) != y_sub
            x_adv[todo] = crafted
            success[todo[hit]] = True
    return x_adv, success

