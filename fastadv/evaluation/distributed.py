"""evaluate() over several processes: the attacked points are dealt out to the ranks in whole
batches, and the per-point results gathered, so that the record is the one a one-process run
makes on the same points with the same seed.

Under torchrun (or once the caller initialised a process group) every rank runs evaluate()
on the same model and data. The clean pass is cheap and runs on every rank; each attack's
batches of attacked points are the same global batches as in one process, batch i going to
rank i mod world_size (AutoAttack runs on each rank's batches). A batch's random draws come
from a generator seeded by (attack seed, the batch's first position) (:func:`batch_seed`),
never from the draws of the batches before it, so no result depends on which rank ran which
batch. Per-point results are gathered by a sum all-reduce of tensors in which each rank
filled only its own points (the others are 0, and x + 0 == x exactly).
"""
from __future__ import annotations

import os
from typing import Optional

import torch
import torch.distributed as dist

from fastadv._seeds import mix_seed


def batch_seed(attack_seed: int, begin: int) -> int:
    """The seed of the batch of attacked points starting at position ``begin``."""
    return mix_seed(attack_seed, begin)


class PointShard:
    """Which batches of attacked points this rank runs, and the gather of their results.
    With one process it runs every batch and gathers nothing."""

    def __init__(self, device: torch.device):
        # imported here: fastadv.training imports fastadv.evaluation at import time
        from fastadv.training.distributed import (init_process_group, launched_by_torchrun,
                                                  local_device)
        if launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1:
            # cuda:LOCAL_RANK becomes the current device, as nccl needs
            init_process_group(local_device(device))
        active = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.rank = dist.get_rank() if active else 0
        self.world_size = dist.get_world_size() if active else 1
        # nccl reduces CUDA tensors only; gloo reduces CPU tensors
        # (the results are reduced on the device the attacks ran on)
        self.device = (device if active and dist.get_backend() == "nccl" and device.type == "cuda"
                       else torch.device("cpu"))

    def starts(self, count: int, batch_size: int) -> range:
        """The first positions of this rank's batches among ``count`` attacked points."""
        return range(self.rank * batch_size, count, self.world_size * batch_size)

    def own_count(self, count: int, batch_size: int) -> int:
        """How many of the ``count`` attacked points this rank attacks."""
        return sum(min(batch_size, count - begin) for begin in self.starts(count, batch_size))

    def progress(self, progress: Optional[bool]) -> Optional[bool]:
        """The progress setting: rank 0's own; the other ranks show none."""
        return progress if self.rank == 0 else False

    def gather(self, success: torch.Tensor, distance: Optional[torch.Tensor],
               queries: Optional[torch.Tensor]):
        """Every rank's per-point results on every rank: ``success`` (bool, all points: True
        on every rank for the points not attacked), ``distance`` and ``queries`` (RayS, else
        None; 0 for the points not attacked). A rank filled only its own attacked points."""
        if self.world_size == 1:
            return success, distance, queries
        hits = self._sum(success.to(torch.int32)) > 0
        return (hits, None if distance is None else self._sum(distance),
                None if queries is None else self._sum(queries))

    def _sum(self, values: torch.Tensor) -> torch.Tensor:
        total = values.to(self.device, copy=True)
        dist.all_reduce(total)
        return total.to(values.device)
