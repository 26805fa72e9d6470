"""What the PGD attack (pgd.py) and the transfer attack (transfer.py) share: the checks of
their common arguments, the restart loop over the points not yet broken, and one PGD run.

The step size ``alpha`` defaults to eps/4 (:func:`default_alpha`, public as
``fastadv.attacks.default_alpha`` so that evaluation records name the step that was taken).
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional, Tuple

import torch

from fastadv import ops
from fastadv._checks import (check_batch, check_eps, check_int, check_optional_float,
                             check_pixels)
from fastadv.attacks import losses

__all__ = ["default_alpha", "check_pgd_arguments", "unbroken", "pgd_run"]


def default_alpha(alpha: Optional[float], eps: float) -> float:
    """The PGD step: ``alpha`` when given, else eps/4 (GradAlign's and Fast-BAT's evaluation
    code)."""
    return eps / 4 if alpha is None else alpha


def check_pgd_arguments(x, y, *, eps, steps, restarts, alpha, loss, min_steps: int
                        ) -> Tuple[float, float, Callable]:
    """Checks the batch (pixel values included, once per attack call) and the PGD settings in
    the order the attacks document; returns ``(eps, alpha, loss_fn)`` with eps and alpha as
    floats (alpha eps/4 when not given)."""
    check_batch(x, y)
    check_pixels("x", x)
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


def pgd_run(model: Callable, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int,
            alpha: float, loss_fn: Callable, start: Optional[torch.Tensor],
            stop_on_success: bool = True, backend: Optional[str] = None
            ) -> Tuple[torch.Tensor, torch.Tensor]:
    """One PGD run from ``start`` (x itself when None); arguments are trusted.

    With ``stop_on_success`` a point leaves the batch at its first misclassified iterate
    (which is returned for it): there is nothing left to find for it, and dropping it makes
    later steps cheaper. Without it every point takes all K steps and the last iterate is
    returned (what a transfer attack needs). Returns ``(x_adv, success)``; ``success`` is
    all False when ``stop_on_success`` is off.
    """
    out = (x if start is None else start).detach().clone()
    success = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    index = torch.arange(x.shape[0], device=x.device)
    x_cur, x_nat, y_cur = out.clone(), x.detach(), y
    for step in range(steps + 1):
        last = step == steps
        if last and not stop_on_success:
            break
        x_cur = x_cur.detach().requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            logits = model(x_cur)
        keep = None  # the points still to attack, when some just broke
        if stop_on_success:
            wrong = logits.detach().argmax(dim=1) != y_cur
            n_wrong = int(wrong.sum())  # the step's one host sync
            if n_wrong:
                success[index[wrong]] = True
                out[index[wrong]] = x_cur.detach()[wrong]
                keep = ~wrong
            if last or n_wrong == wrong.numel():
                break
        if keep is None:
            loss = loss_fn(logits, y_cur)
        else:
            loss = loss_fn(logits[keep], y_cur[keep])
        grad, = torch.autograd.grad(loss, x_cur)
        if keep is not None:
            x_cur, grad, x_nat, y_cur, index = (t[keep] for t in (x_cur, grad, x_nat, y_cur,
                                                                  index))
        x_cur = ops.pgd_step(x_cur.detach(), grad, x_nat, alpha=alpha, eps=eps,
                             backend=backend)
        if not stop_on_success:
            out = x_cur
    if stop_on_success:
        still = ~success[index]
        out[index[still]] = x_cur.detach()[still]
    return out.detach(), success
