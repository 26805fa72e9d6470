"""RayS: the hard-label L-inf attack of Chen & Gu, "RayS: A Ray Searching Method for
Hard-label Adversarial Attack", KDD 2020, written here from the paper, batched over points.

RayS only sees predicted labels. It searches over ray directions d in {-1, +1}^D from x and
measures each direction by its decision radius
    g(d) = min { r >= 0 : f(clip01(x + r * d)) != y },
whose L-inf length is at most r. Finding the best direction is a discrete problem, solved by a
hierarchical sign-flip search: start from d = (1, ..., 1); at stage s cut d into 2^s blocks
and, block by block, flip the block's signs; keep the flip when the flipped direction is
already adversarial at the current best radius (one query), then binary-search its radius
on [0, r_best] (the paper's Algorithm 1 and 2); when the blocks are single coordinates,
start again at stage 0. A direction that is not adversarial at r_best cannot improve, so it
costs one query.

Batched: all points follow the same block schedule; each keeps its own direction, radius and
query count, and leaves the batch when its budget is spent (or, with ``early_stop``, as soon
as its radius is <= eps). The binary search stops when (hi - lo) <= rtol * hi, so distances
are exact to a relative 1e-3 by default, whatever their scale.

ADBD (average decision boundary distance, the RayS paper's robustness metric) is the mean over
all evaluated points of the L-inf distance of the final adversarial example (0 for points
misclassified clean). Points for which no direction is adversarial even at r = 1 (the whole
box) get distance ``inf`` here; evaluate() reports them separately and counts them as 1.0,
the largest L-inf distance inside [0, 1], in the ADBD.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from fastadv._checks import (check_batch, check_bool, check_eps, check_float, check_int,
                             check_model, check_pixels)

__all__ = ["rays", "RaySResult"]


@dataclass
class RaySResult:
    x_adv: torch.Tensor      # final adversarial examples (x itself where none was found)
    distance: torch.Tensor   # L-inf distance ||x_adv - x||, inf where none was found
    queries: torch.Tensor    # model queries spent per point (int64)

    def success(self, eps: float) -> torch.Tensor:
        """Points broken at radius eps (misclassified clean counts as broken)."""
        return self.distance <= eps


class _LabelOracle:
    """Hard-label access to the model: only argmax(f(x)) leaves this class."""

    def __init__(self, model: Callable, shape):
        self.model = model
        self.shape = tuple(shape)

    @torch.no_grad()
    def misclassified(self, x_flat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.model(x_flat.view(-1, *self.shape)).argmax(dim=1) != y


def _ray(x: torch.Tensor, d: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return (x + r[:, None] * d).clamp_(0.0, 1.0)


def _bisect(oracle, x, y, d, hi, queries, rtol):
    """Shrink [0, hi] around the decision radius along d (hi adversarial). In place on
    ``queries`` (one count per row); returns the new hi for every row."""
    lo = torch.zeros_like(hi)
    hi = hi.clone()
    rows = torch.arange(x.shape[0], device=x.device)
    while True:
        open_rows = rows[(hi - lo) > rtol * hi]
        if open_rows.numel() == 0:
            return hi
        mid = (lo[open_rows] + hi[open_rows]) / 2
        adv = oracle.misclassified(_ray(x[open_rows], d[open_rows], mid), y[open_rows])
        queries[open_rows] += 1
        hi[open_rows] = torch.where(adv, mid, hi[open_rows])
        lo[open_rows] = torch.where(adv, lo[open_rows], mid)


def _probe(oracle, x_flat, y, rows, d, radius, used, rtol):
    """Rays ``d`` of points ``rows`` at ``radius``, one query each; for the hits (adversarial
    there) the radius is bisected. Updates ``used``; returns the hit mask over ``rows`` and
    the hits' new radii (None when there is no hit)."""
    x_rows, y_rows = x_flat[rows], y[rows]
    hit = oracle.misclassified(_ray(x_rows, d, radius), y_rows)
    used[rows] += 1
    if not bool(hit.any()):
        return hit, None
    hits = rows[hit]
    hit_used = used[hits]  # a copy, counted up by the search and written back
    new_radius = _bisect(oracle, x_rows[hit], y_rows[hit], d[hit], radius[hit], hit_used, rtol)
    used[hits] = hit_used
    return hit, new_radius


@torch.no_grad()
def rays(model: Callable, x: torch.Tensor, y: torch.Tensor, *, queries: int = 40000,
         eps: Optional[float] = None, early_stop: bool = False, rtol: float = 1e-3
         ) -> RaySResult:
    """Run RayS with a budget of ``queries`` model calls per point.

    A point stops once it has spent ``queries``; a binary search begun under the budget is
    finished, so the count can overrun by the length of one search (about 10 queries).
    ``eps`` is only needed with ``early_stop=True`` (stop a point once its radius is <= eps,
    enough for robust accuracy but not for ADBD). The search is deterministic. Arguments,
    pixel values included, are checked once per call.
    """
    check_model("model", model)
    check_batch(x, y)
    check_pixels("x", x)
    check_int("queries", queries, minimum=1)
    rtol = check_float("rtol", rtol, strictly_positive=True)
    check_bool("early_stop", early_stop)
    if early_stop and eps is None:
        raise ValueError("early_stop=True needs eps")
    if eps is not None:
        eps = check_eps(eps)
    n = x.shape[0]
    dim = x[0].numel()
    x_flat = x.detach().reshape(n, dim).float()
    oracle = _LabelOracle(model, x.shape[1:])
    used = torch.zeros(n, dtype=torch.long, device=x.device)
    if n == 0:
        return RaySResult(x.detach().clone(), torch.zeros(0, device=x.device), used)

    # clean prediction: misclassified points are at radius 0 and need no search
    radius = torch.full((n,), math.inf, device=x.device)
    clean_wrong = oracle.misclassified(x_flat, y)
    used += 1
    radius[clean_wrong] = 0.0
    direction = torch.ones(n, dim, device=x.device)
    todo = (~clean_wrong).nonzero().squeeze(1)
    if todo.numel() > 0 and queries > 1:
        # the starting direction's own radius (a radius above 1 reaches no new box point)
        one = torch.ones(todo.numel(), device=x.device)
        hit, new_radius = _probe(oracle, x_flat, y, todo, direction[todo], one, used, rtol)
        if new_radius is not None:
            radius[todo[hit]] = new_radius

    def still_searching():
        active = (used < queries) & (radius > 0)
        if early_stop:
            active &= radius > eps
        return active.nonzero().squeeze(1)

    stage, block = 0, 0
    while True:
        active = still_searching()
        if active.numel() == 0:
            break
        block_size = math.ceil(dim / 2 ** stage)
        begin, end = block * block_size, min(dim, (block + 1) * block_size)
        candidate = direction[active].clone()
        candidate[:, begin:end].neg_()
        # a radius above 1 reaches no new points of the box, so 1 stands in for "not found"
        probe = radius[active].clamp(max=1.0)
        better, new_radius = _probe(oracle, x_flat, y, active, candidate, probe, used, rtol)
        if new_radius is not None:
            rows = active[better]
            radius[rows] = new_radius
            direction[rows] = candidate[better]
        block += 1
        if end >= dim:
            stage = 0 if block_size == 1 else stage + 1
            block = 0

    found = torch.isfinite(radius)
    x_adv = x_flat.clone()
    fin = found & (radius > 0)
    x_adv[fin] = _ray(x_flat[fin], direction[fin], radius[fin])
    distance = (x_adv - x_flat).abs().amax(dim=1)
    distance[~found] = math.inf
    return RaySResult(x_adv.view_as(x).to(x.dtype), distance, used)
