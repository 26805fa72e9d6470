"""The four backends of fastadv.ops and what each needs to be available.

Each loader registers one backend's functions in the implementation table
(fastadv/ops/_dispatch.py, which runs them all on the first call that needs the table) or
raises, which leaves that backend out without breaking `import fastadv`; the error is kept
for the message of a call that names the backend.

- reference: fastadv/ops/reference.py, on every device and dtype torch supports, so "auto"
  can always fall back to it.
- cpp: fastadv._C (csrc/cpu/) through the wrappers of fastadv/ops/_compiled.py; CPU tensors,
  float32 and float16.
- triton: the kernels of fastadv.kernels (folder kernels/), registered as they are. On CUDA
  tensors when torch sees a GPU (float32, float16, bfloat16), and on CPU tensors through
  Triton's interpreter when TRITON_INTERPRET=1 was set before the kernels were imported
  (float32 and float16 only; the interpreter is for tests, ~0.5 ms a program).
- cuda: fastadv._C_cuda (csrc/cuda/, built by nvcc at install time when nvcc is found)
  through the same wrappers; float32, float16, bfloat16. Only when torch sees a GPU, the
  module's own statically linked CUDA runtime can use it (``_C_cuda.probe()``: a driver older
  than the toolkit fails there) and every GPU can run its kernel images.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import torch

from fastadv.ops import reference
from fastadv.ops._compiled import CompiledBackend, current_stream, openmp_threads
from fastadv.ops._dispatch import register

REFERENCE_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
REFERENCE_DEVICES = ("cpu", "cuda", "mps", "xpu", "meta")
# setup.py compiles sm_80 SASS (runs on every 8.x GPU) and compute_90 PTX (JIT-compiled on
# 9.0 and newer): an older GPU has no kernel image, and every launch would fail with "no
# kernel image is available", so the cuda backend stays out of the table there (auto then
# falls back instead of failing).
MIN_CUDA_CAPABILITY = (8, 0)


# --- reference ----------------------------------------------------------------------------
# Adapters from the out-parameter contract of fastadv/ops/_dispatch.py to reference.py.

def _reference_pgd_step(x_adv, grad, x, out, *, alpha, eps, sign):
    out.copy_(reference.pgd_step(x_adv, grad, x, alpha=alpha, eps=eps, sign=sign))


def _reference_pgd_step_with_mask(x_adv, grad, x, out, mask_out, *, alpha, eps, sign, tol):
    x_new, mask = reference.pgd_step_with_mask(x_adv, grad, x, alpha=alpha, eps=eps,
                                               sign=sign, tol=tol)
    out.copy_(x_new)
    mask_out.copy_(mask)


def _reference_masked_scale(g, mask, out, *, scale):
    out.copy_(reference.masked_scale(g, mask, scale))


def _reference_random_start(x, out, *, eps, kind, scale, clamp, seed):
    # The noise comes from a CPU generator seeded with the op's seed: reproducible like the
    # kernels' draws, and free of GPU syncs for CUDA tensors.
    generator = torch.Generator().manual_seed(seed)
    out.copy_(reference.random_start(x, eps, kind=kind, scale=scale, clamp=clamp,
                                     generator=generator))


def load_reference() -> None:
    for op, fn in (("pgd_step", _reference_pgd_step),
                   ("pgd_step_with_mask", _reference_pgd_step_with_mask),
                   ("masked_scale", _reference_masked_scale),
                   ("random_start", _reference_random_start),
                   ("kl_div_logits", reference.kl_div_logits),
                   ("kl_div_logits_backward", reference.kl_div_logits_backward)):
        register(op, "reference", fn, dtypes=REFERENCE_DTYPES, devices=REFERENCE_DEVICES)


# --- cpp ------------------------------------------------------------------------------------

def load_cpp() -> None:
    extension = importlib.import_module("fastadv._C")
    CompiledBackend("cpp", extension, "cpu",
                    {torch.float32: extension.FLOAT32, torch.float16: extension.FLOAT16},
                    any_dense_layout=True, last_argument=openmp_threads).register()


# --- triton ---------------------------------------------------------------------------------

def _import_kernels():
    """fastadv.kernels; from the source tree's kernels/ folder when fastadv runs uninstalled
    (setup.py maps that folder onto fastadv.kernels only at install time)."""
    try:
        return importlib.import_module("fastadv.kernels")
    except ModuleNotFoundError as exc:
        if exc.name != "fastadv.kernels":
            raise
    folder = Path(__file__).resolve().parents[2] / "kernels"
    spec = importlib.util.spec_from_file_location(
        "fastadv.kernels", folder / "__init__.py", submodule_search_locations=[str(folder)])
    if spec is None or not (folder / "__init__.py").is_file():
        raise ImportError(f"fastadv.kernels is not installed and {folder} does not exist")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fastadv.kernels"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["fastadv.kernels"]
        raise
    return module


def load_triton() -> None:
    cuda = torch.cuda.is_available()
    if not cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise ImportError("the triton backend needs a CUDA GPU, or TRITON_INTERPRET=1 set "
                          "before fastadv is imported to run its kernels in the CPU interpreter")
    importlib.import_module("triton")  # ImportError here when triton is not installed
    kernels = _import_kernels()
    if kernels.INTERPRETED:
        # The interpreter also accepts CUDA tensors (copying them through the host).
        devices = ("cpu", "cuda") if cuda else ("cpu",)
        dtypes = (torch.float32, torch.float16)
    elif cuda:
        devices = ("cuda",)
        dtypes = (torch.float32, torch.float16, torch.bfloat16)
    else:
        raise ImportError("fastadv.kernels was imported before TRITON_INTERPRET=1 was set, so "
                          "its kernels are compiled for a GPU and this machine has none")
    from fastadv.kernels import (kl_div_logits, masked_scale, pgd_step, pgd_step_with_mask,
                                 random_start)
    # Each kernel module and launcher is named after its op.
    for fn in (pgd_step.pgd_step, pgd_step_with_mask.pgd_step_with_mask,
               masked_scale.masked_scale, random_start.random_start,
               kl_div_logits.kl_div_logits, kl_div_logits.kl_div_logits_backward):
        register(fn.__name__, "triton", fn, dtypes=dtypes, devices=devices)


# --- cuda -----------------------------------------------------------------------------------

def load_cuda() -> None:
    if not torch.cuda.is_available():
        raise ImportError("the cuda backend needs a CUDA GPU visible to torch")
    extension = importlib.import_module("fastadv._C_cuda")
    why = extension.probe()
    if why:
        raise ImportError(f"fastadv._C_cuda cannot use the GPU: {why}")
    old = [f"cuda:{i} ({torch.cuda.get_device_name(i)}, sm_{major}{minor})"
           for i in range(torch.cuda.device_count())
           for major, minor in [torch.cuda.get_device_capability(i)]
           if (major, minor) < MIN_CUDA_CAPABILITY]
    if old:
        raise ImportError(f"fastadv._C_cuda is compiled for compute capability >= 8.0 "
                          f"(sm_80, compute_90); these GPUs are older: {', '.join(old)}")
    CompiledBackend("cuda", extension, "cuda",
                    {torch.float32: extension.FLOAT32, torch.float16: extension.FLOAT16,
                     torch.bfloat16: extension.BFLOAT16},
                    any_dense_layout=False, last_argument=current_stream).register()


LOADERS = {"reference": load_reference, "cpp": load_cpp, "triton": load_triton,
           "cuda": load_cuda}
