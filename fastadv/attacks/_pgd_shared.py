"""What the PGD attack (pgd.py) and the transfer attack (transfer.py) share: the checks of
their common arguments and the restart loop over the points not yet broken."""
from __future__ import annotations

from typing import Callable, Iterator, Optional, Tuple

import torch

from fastadv.attacks import losses
from fastadv._checks import check_batch, check_eps, check_int, check_optional_float


def default_alpha(alpha: Optional[float], eps: float) -> float:
    """The PGD step: ``alpha`` when given, else eps/4 (GradAlign's and Fast-BAT's evaluation
    code)."""
    return eps / 4 if alpha is None else alpha


def check_pgd_arguments(x, y, *, eps, steps, restarts, alpha, loss, min_steps: int
                        ) -> Tuple[float, float, Callable]:
    """Checks the batch and the PGD settings in the order the attacks document; returns
    ``(eps, alpha, loss_fn)`` with eps and alpha as floats (alpha eps/4 when not given)."""
    check_batch(x, y)
    eps = check_eps(eps)
    check_int("steps", steps, minimum=min_steps)
    check_int("restarts", restarts, minimum=1)
    alpha = default_alpha(check_optional_float("alpha", alpha, strictly_positive=True), eps)
    return eps, alpha, losses.get(loss)


def unbroken(success: torch.Tensor, restarts: int) -> Iterator[torch.Tensor]:
    """For each of ``restarts`` restarts, the indices of the points ``success`` does not mark
    yet (read afresh each time, so the caller marks its hits between restarts); stops early
    once every point is broken, since a restart could find nothing more."""
    for _ in range(restarts):
        todo = (~success).nonzero().squeeze(1)
        if todo.numel() == 0:
            return
        yield todo
