"""The op benchmark cases, shared by `fastadv bench` and benchmarks/test_bench_ops.py.

Each case is one fused op at one size, named after the op (``pgd_step[128x3x32x32]``), with
the bytes it must move at minimum (reads plus writes), so a timing converts to GB/s and
compares with a plain copy of the same bytes (case "copy"), the memory-bandwidth limit of an
elementwise op. Timing helpers: :func:`timed_backends`, :func:`synchronized`,
:func:`median_seconds`.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, List

import torch

import fastadv.ops as ops

IMAGE_BATCHES = (128, 512)
LOGIT_CLASSES = (10, 100)
LOGIT_BATCH = 512
OP_NAMES = ("pgd_step", "pgd_step_", "pgd_step_with_mask", "masked_scale", "random_start",
            "kl_div_logits")


@dataclass(frozen=True)
class OpCase:
    op: str
    size: str
    bytes_moved: int
    make: Callable[[str], Callable[[], object]]  # backend name -> zero-argument call

    @property
    def name(self) -> str:
        return f"{self.op}[{self.size}]"


def _images(batch: int, device: str):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, 32, 32, generator=g)
    x_adv = (x + (torch.rand(x.shape, generator=g) * 2 - 1) * 8 / 255).clamp(0, 1)
    grad = torch.randn(x.shape, generator=g)
    return x_adv.to(device), grad.to(device), x.to(device)


def _image_cases(batch: int, device: str) -> List[OpCase]:
    x_adv, grad, x = _images(batch, device)
    mask = x > 0.1
    n, f32 = x.numel(), 4
    size = f"{batch}x3x32x32"
    eps = 8 / 255
    return [
        OpCase("copy", size, 4 * n * f32,
               lambda b, src=torch.cat([x, x]), dst=torch.empty(2 * batch, 3, 32, 32, device=device):
               lambda: dst.copy_(src)),
        OpCase("pgd_step", size, 4 * n * f32,
               lambda b: lambda: ops.pgd_step(x_adv, grad, x, alpha=2 / 255, eps=eps, backend=b)),
        OpCase("pgd_step_", size, 4 * n * f32,
               lambda b: lambda: ops.pgd_step_(x_adv, grad, x, alpha=2 / 255, eps=eps, backend=b)),
        OpCase("pgd_step_with_mask", size, n * (4 * f32 + 1),
               lambda b: lambda: ops.pgd_step_with_mask(x_adv, grad, x, alpha=0.05, eps=eps, backend=b)),
        OpCase("masked_scale", size, n * (2 * f32 + 1),
               lambda b: lambda: ops.masked_scale(grad, mask, 0.1, backend=b)),
        OpCase("random_start", size, 2 * n * f32,
               lambda b: lambda: ops.random_start(x, eps, backend=b)),
    ]


def _kl_case(classes: int, device: str) -> OpCase:
    q = torch.randn(LOGIT_BATCH, classes, device=device, requires_grad=True)
    p = torch.randn(LOGIT_BATCH, classes, device=device, requires_grad=True)

    def make(backend):
        def call():
            return torch.autograd.grad(ops.kl_div_logits(q, p, backend=backend), (q, p))
        return call

    # forward reads q and p; backward reads them again and writes both gradients
    return OpCase("kl_div_logits", f"{LOGIT_BATCH}x{classes}", 6 * q.numel() * 4, make)


def op_cases(device: str = "cpu") -> List[OpCase]:
    cases: List[OpCase] = []
    for batch in IMAGE_BATCHES:
        cases.extend(_image_cases(batch, device))
    cases.extend(_kl_case(c, device) for c in LOGIT_CLASSES)
    return cases


def timed_backends(device: str) -> List[str]:
    """Backends worth timing: the Triton interpreter on CPU checks logic, it is not a speed path."""
    return [b for b in ops.available_backends(device) if not (device == "cpu" and b == "triton")]


def synchronized(fn: Callable[[], object], device: str) -> Callable[[], object]:
    if torch.device(device).type != "cuda":
        return fn

    def run():
        out = fn()
        torch.cuda.synchronize()
        return out
    return run


def median_seconds(fn: Callable[[], object], *, repeat: int = 20, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
