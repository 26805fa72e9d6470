"""Compile every Triton kernel of fastadv for real GPUs, on a machine without one.

    python -m tests.ops.triton_gpu_compile        # prints one JSON line per compiled kernel

Triton's CPU interpreter (what the op tests run here) executes the kernels' Python with NumPy
and forgives what the GPU compiler refuses: a dtype mismatch, an op a GPU target lacks, a
block shape it cannot lay out. This script compiles each kernel as fastadv's launchers
launch it (their real arguments and launch options, captured by calling each launcher with
CPU tensors while its kernel is replaced by a recorder) down to PTX and a cubin for the GPUs
fastadv builds for, with triton.compile and an explicit target: no GPU or driver is needed,
only triton's bundled ptxas. It must run without TRITON_INTERPRET (the kernels are then
compiled functions), hence its own process: tests/ops/test_triton_gpu_compile.py starts it.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time

import torch

# A100 and H100/H200: the GPUs fastadv's CUDA module is built for (setup.py CUDA_ARCHS)
TARGETS = (80, 90)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SIGNATURE_TYPES = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16",
                   torch.uint8: "*u8", torch.int32: "*i32", torch.int64: "*i64"}
LAUNCH_OPTIONS = ("num_warps", "num_stages", "enable_fp_fusion")


class Recorder:
    """Stands in for a kernel: ``kernel[grid](*args, **kwargs)`` records the call."""

    def __init__(self, kernel):
        self.kernel, self.calls = kernel, []

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.calls.append((args, kwargs))


def scalar_type(value) -> str:
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -2 ** 31 <= value < 2 ** 31 else "i64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"no Triton type for a {type(value).__name__} argument ({value!r})")


def aligned(value) -> bool:
    """Whether a launch specialises the argument as divisible by 16 (tt.divisibility=16, what
    lets the compiler emit 16-byte vector accesses), as Triton's own launcher decides: a
    tensor whose data pointer is, an int that is."""
    if isinstance(value, torch.Tensor):
        return value.data_ptr() % 16 == 0
    return isinstance(value, int) and not isinstance(value, bool) and value % 16 == 0


def source_of(kernel, args, kwargs):
    """(ASTSource, compile options) of one recorded launch, with the launcher's
    specialisation: constexprs, types and divisibility hints."""
    from triton.compiler import ASTSource

    names = kernel.arg_names
    constexpr_names = {names[i] for i in kernel.constexprs}
    values = dict(zip(names, args), **{k: v for k, v in kwargs.items() if k in names})
    signature, constexprs, attrs = {}, {}, {}
    for index, name in enumerate(names):
        value = values[name]
        if name in constexpr_names:
            signature[name], constexprs[name] = "constexpr", value
            continue
        if isinstance(value, torch.Tensor):
            signature[name] = SIGNATURE_TYPES[value.dtype]
        else:
            signature[name] = scalar_type(value)
        if aligned(value):
            attrs[(index,)] = [["tt.divisibility", 16]]
    options = {k: v for k, v in kwargs.items() if k in LAUNCH_OPTIONS}
    return ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs), options


def launches():
    """(label, kernel module, kernel attribute, launcher call) for every kernel variant: the
    elementwise ops on a CIFAR-like batch (its sizes divisible by 16, so the vectorised
    specialisation) and, in float32, on a ragged size; the KL with one tile per row, the
    widest single tile (8 warps) and rows walked in chunks."""
    for dtype, numel in [(dtype, 128 * 96) for dtype in DTYPES] + [(torch.float32, 3001)]:
        def tensor(*shape, dtype=dtype):
            return torch.rand(*shape).to(dtype)
        x = tensor(numel)
        dtype = f"{dtype} numel={numel}"  # the label
        for sign in (True, False):
            yield (f"pgd_step {dtype} sign={sign}", "pgd_step", "_pgd_step_kernel",
                   lambda m, sign=sign, x=x: m.pgd_step(x, x, x, x.clone(), alpha=0.01,
                                                        eps=0.03, sign=sign))
            yield (f"pgd_step_with_mask {dtype} sign={sign}", "pgd_step_with_mask",
                   "_pgd_step_with_mask_kernel",
                   lambda m, sign=sign, x=x: m.pgd_step_with_mask(
                       x, x, x, x.clone(), torch.zeros(x.shape, dtype=torch.bool), alpha=0.01,
                       eps=0.03, sign=sign, tol=1e-6))
        yield (f"masked_scale {dtype}", "masked_scale", "_masked_scale_kernel",
               lambda m, x=x: m.masked_scale(x, x > 0.5, x.clone(), scale=0.5))
        for kind in ("uniform", "normal"):
            for clamp in (True, False):
                yield (f"random_start {dtype} {kind} clamp={clamp}", "random_start",
                       "_random_start_kernel",
                       lambda m, kind=kind, clamp=clamp, x=x: m.random_start(
                           x, x.clone(), eps=0.03, kind=kind, scale=0.001, clamp=clamp,
                           seed=12345))
        if numel % 16:
            continue  # the ragged size is for the elementwise kernels
        for cols in (10, 4096, 10000):
            q, p = tensor(64, cols), tensor(64, cols)
            yield (f"kl_div_logits {dtype} cols={cols}", "kl_div_logits", "_kl_rows_kernel",
                   lambda m, q=q, p=p: m.kl_div_logits(q, p))
            yield (f"kl_div_logits_backward {dtype} cols={cols}", "kl_div_logits",
                   "_kl_rows_backward_kernel",
                   lambda m, q=q, p=p: m.kl_div_logits_backward(
                       q, p, torch.ones(64).to(q.dtype)))


def main() -> int:
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("run without TRITON_INTERPRET=1: the kernels must be compiled functions",
              file=sys.stderr)
        return 2
    import triton
    from triton.backends.compiler import GPUTarget

    failures = 0
    for label, module_name, attribute, launch in launches():
        module = importlib.import_module(f"fastadv.kernels.{module_name}")
        kernel = getattr(module, attribute)
        recorder = Recorder(kernel)
        setattr(module, attribute, recorder)
        try:
            launch(module)
        finally:
            setattr(module, attribute, kernel)
        (args, kwargs), = recorder.calls
        for arch in TARGETS:
            start = time.perf_counter()
            row = {"kernel": label, "target": f"sm_{arch}", "triton": triton.__version__}
            try:
                src, options = source_of(kernel, args, kwargs)
                compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                                          options=options)
                row.update(ok=True, ptx_lines=compiled.asm["ptx"].count("\n"),
                           cubin_bytes=len(compiled.asm["cubin"]))
            except Exception as exc:  # noqa: BLE001  (reported per kernel, then counted)
                failures += 1
                row.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:2000])
            row["seconds"] = round(time.perf_counter() - start, 2)
            print(json.dumps(row), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
