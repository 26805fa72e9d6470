"""What the PGD attack (pgd.py) and the transfer attack (transfer.py) share: the checks of
their common arguments and the restart loop over the points not yet broken."""
from __future__ import annotations

from typing import Callable, Iterator, Optional, Tuple

import torch

from fastadv.attacks import losses
from fastadv.attacks._checks import (check_batch, check_eps, check_int, check_loss_name,
                                     check_positive_float)


def check_pgd_arguments(x, y, *, eps, steps, restarts, alpha, loss, min_steps: int
                        ) -> Tuple[float, Optional[float], Callable]:
    """Checks the batch and the PGD settings in the order the attacks document; returns
    ``(eps, alpha, loss_fn)`` with eps and alpha as floats (alpha None when not given)."""
    check_batch(x, y)
    eps = check_eps(eps)
    check_int("steps", steps, minimum=min_steps)
    check_int("restarts", restarts, minimum=1)
    alpha = check_positive_float("alpha", alpha, allow_none=True)
    return eps, alpha, losses.get(check_loss_name(loss))


def unbroken(success: torch.Tensor, restarts: int) -> Iterator[torch.Tensor]:
    """For each of ``restarts`` restarts, the indices of the points ``success`` does not mark
    yet (read afresh each time, so the caller marks its hits between restarts); stops early
    once every point is broken, since a restart could find nothing more."""
    for _ in range(restarts):
        todo = (~success).nonzero().squeeze(1)
        if todo.numel() == 0:
            return
        yield todo
