"""Registers the Triton kernels (the package fastadv.kernels, folder kernels/) as the
"triton" backend of fastadv.ops.

Where it runs: on CUDA tensors when torch sees a GPU (float32, float16, bfloat16), and on
CPU tensors through Triton's interpreter when TRITON_INTERPRET=1 was set before the kernels
were imported (float32 and float16 only; the interpreter is for tests, ~0.5 ms a program).
With neither, importing this module raises ImportError, which leaves the backend out of
the dispatch table (fastadv/ops/_dispatch.py) without breaking `import fastadv`.

Kernels and their reference formulas: kernels/pgd_step.py, kernels/pgd_step_mask.py,
kernels/masked_scale.py, kernels/random_start.py, kernels/kl_div.py.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import torch

from fastadv.ops._dispatch import register

_cuda = torch.cuda.is_available()
if not _cuda and os.environ.get("TRITON_INTERPRET") != "1":
    raise ImportError("the triton backend needs a CUDA GPU, or TRITON_INTERPRET=1 set before "
                      "fastadv is imported to run its kernels in the CPU interpreter")

import triton  # noqa: E402,F401  (ImportError here when triton is not installed)


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


_import_kernels()
from fastadv.kernels import _launch, kl_div, masked_scale, pgd_step  # noqa: E402
from fastadv.kernels import pgd_step_mask, random_start  # noqa: E402

if _launch.INTERPRETED:
    # The interpreter also accepts CUDA tensors (copying them through the host).
    _DEVICES = ("cpu", "cuda") if _cuda else ("cpu",)
    _DTYPES = (torch.float32, torch.float16)
elif _cuda:
    _DEVICES = ("cuda",)
    _DTYPES = (torch.float32, torch.float16, torch.bfloat16)
else:
    raise ImportError("fastadv.kernels was imported before TRITON_INTERPRET=1 was set, so its "
                      "kernels are compiled for a GPU and this machine has none")

for _op, _fn in (("pgd_step", pgd_step.pgd_step),
                 ("pgd_step_with_mask", pgd_step_mask.pgd_step_with_mask),
                 ("masked_scale", masked_scale.masked_scale),
                 ("random_start", random_start.random_start),
                 ("kl_div_rows", kl_div.kl_div_rows),
                 ("kl_div_rows_backward", kl_div.kl_div_rows_backward)):
    register(_op, "triton", _fn, dtypes=_DTYPES, devices=_DEVICES)
