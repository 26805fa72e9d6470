"""Launch helpers shared by the Triton kernels: block sizes, grids and the device guard.

Block sizes differ by where the kernels run. On a GPU a program of 1024 elements and 4 warps
keeps every SM busy and gives each thread 16-byte vector accesses. Under the CPU interpreter
(TRITON_INTERPRET=1) every program costs a fixed ~0.5 ms of Python, so programs are made as
large as numpy handles comfortably and a test tensor takes one or two of them.
"""
from __future__ import annotations

import contextlib
import functools

import torch
import triton
from triton import knobs

# Read once, at the same moment @triton.jit reads it in the kernel modules (they import this
# module first): it decides whether the kernels were built for the interpreter or the GPU.
INTERPRETED = bool(knobs.runtime.interpret)

ELEMENTWISE_BLOCK = 16384 if INTERPRETED else 1024
ELEMENTWISE_WARPS = 4

# The step kernels match the reference's separately rounded multiply and add bit for bit, so
# the compiler must not contract them into an FMA (the interpreter never does and has no
# such option).
NO_FP_FUSION = {} if INTERPRETED else {"enable_fp_fusion": False}

# kl_div rows: a tile holds ROWS x BLOCK_C logits; a row wider than MAX_BLOCK_C is walked in
# chunks of MAX_BLOCK_C (online log-sum-exp) instead of living in registers whole.
ROW_TILE = 16384 if INTERPRETED else 2048
MAX_BLOCK_C = 16384 if INTERPRETED else 4096
MAX_ROWS_PER_PROGRAM = 4096 if INTERPRETED else 16


@functools.lru_cache(maxsize=256)
def scalar_as(value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to ``dtype`` (exactly representable in float32 for every dtype the
    kernels take)."""
    return float(torch.tensor(value, dtype=dtype).item())


_PROBE_SCALAR = 0.3  # not representable in float16 / bfloat16


@functools.lru_cache(maxsize=None)
def torch_rounds_scalar(op: str, dtype: torch.dtype, device_type: str) -> bool:
    """Whether torch rounds a Python scalar to ``dtype`` before ``tensor <op> scalar``
    ("add" or "mul") on ``device_type``. For half types torch's CPU add does and its CPU
    multiply does not, and that is a property of each kernel, not a rule, so a kernel that
    mirrors the reference bit for bit asks torch once per (op, dtype, device) instead."""
    if dtype == torch.float32:
        return False  # rounding to float32 is what a float32 kernel argument does anyway
    device = torch.device(device_type)
    if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        return op == "add"  # cannot synchronise inside a CUDA graph capture; CPU's answer
    values = (torch.arange(1, 257, dtype=torch.float32) / 7).to(dtype)
    rounded = scalar_as(_PROBE_SCALAR, dtype)
    if op == "add":
        got = values.to(device) + _PROBE_SCALAR
        if_rounded = (values.float() + rounded).to(dtype)
    elif op == "mul":
        got = values.to(device) * _PROBE_SCALAR
        if_rounded = (values.float() * rounded).to(dtype)
    else:
        raise ValueError(f"op must be 'add' or 'mul', got {op!r}")
    return bool(torch.equal(got.cpu(), if_rounded))


def like_torch(op: str, value: float, tensor: torch.Tensor) -> float:
    """The scalar a kernel should use where the reference computes ``tensor <op> value``."""
    value = float(value)
    if torch_rounds_scalar(op, tensor.dtype, tensor.device.type):
        return scalar_as(value, tensor.dtype)
    return value


def elementwise_grid(numel: int, block: int = ELEMENTWISE_BLOCK):
    return (triton.cdiv(numel, block),)


def on_device(tensor: torch.Tensor):
    """Launch on the tensor's GPU, not on whichever GPU happens to be current."""
    if tensor.device.type == "cuda":
        return torch.cuda.device(tensor.device)
    return contextlib.nullcontext()


def row_tiling(rows: int, cols: int):
    """(ROWS, BLOCK_C, SINGLE_CHUNK, num_warps) for a row-wise kernel over [rows, cols]."""
    block_c = max(16, triton.next_power_of_2(cols))
    single = block_c <= MAX_BLOCK_C
    if not single:
        block_c = MAX_BLOCK_C
    per_program = max(1, min(ROW_TILE // block_c, MAX_ROWS_PER_PROGRAM,
                             triton.next_power_of_2(rows)))
    warps = 4 if per_program * block_c <= 2048 else 8
    return per_program, block_c, single, warps
