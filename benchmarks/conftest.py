"""Shared helpers of the benchmark suites (run with `pytest benchmarks/ --benchmark-only`).

Every benchmark records the device, torch and triton versions in extra_info, and for memory-
bound ops the bytes moved per call and the achieved GB/s, to compare with a plain copy of the
same bytes (the memory-bandwidth yardstick) measured in the same run. CUDA work is
synchronized inside the timed call (fastadv.ops.benchmark.synchronized).
"""
import platform

import pytest
import torch

import fastadv


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"


def versions() -> dict:
    try:
        import triton
        triton_version = triton.__version__
    except Exception:  # triton is optional on CPU
        triton_version = None
    return {"torch": torch.__version__, "triton": triton_version,
            "fastadv": fastadv.__version__, "python": platform.python_version()}


def record(benchmark, device: str, bytes_moved: int = 0, **info) -> None:
    """Fill extra_info after the timing ran (the median is known only then)."""
    benchmark.extra_info.update(device=device_name(device), **versions(), **info)
    if bytes_moved and benchmark.stats is not None:
        median = benchmark.stats.stats.median
        benchmark.extra_info["bytes_moved"] = int(bytes_moved)
        benchmark.extra_info["gb_per_s"] = round(bytes_moved / median / 1e9, 3)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
