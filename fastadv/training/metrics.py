"""Per-epoch metric accumulation on the device: sums of tensors, read with one host
synchronisation at the end of the epoch (no .item() per step on the hot path)."""
from __future__ import annotations

import resource
import sys
from typing import Dict

import torch


class EpochMeter:
    def __init__(self, device):
        self.device = torch.device(device)
        self.sums: Dict[str, torch.Tensor] = {}
        self.count = 0

    def update(self, batch_size: int, loss, logits, y, metrics: Dict[str, torch.Tensor]) -> None:
        values = {"loss": loss.detach().float() * batch_size,
                  "accuracy": (logits.detach().argmax(1) == y).sum().float()}
        for key, value in metrics.items():
            values[key] = value.detach().float() * batch_size
        for key, value in values.items():  # fresh tensors: the first one can be kept as the sum
            if key in self.sums:
                self.sums[key] += value
            else:
                self.sums[key] = value
        self.count += batch_size

    def read(self) -> Dict[str, float]:
        if not self.sums:
            return {}
        keys = list(self.sums)
        values = torch.stack([self.sums[k] for k in keys]).tolist()  # the one sync
        return {f"train_{k}": v / max(self.count, 1) for k, v in zip(keys, values)}


def peak_memory_mb(device) -> float:
    """Peak device memory on CUDA, else the process's peak resident set size."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024
