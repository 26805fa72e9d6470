"""The CUDA extension (fastadv._C_cuda from csrc/cuda/, the "cuda" backend) as far as a
machine without a GPU can check it: where the install found nvcc, the module was built,
loads (every symbol of the static CUDA runtime resolved), binds every fused op, and its own
probe reports the missing GPU instead of crashing. Its kernels run in tests/gpu and in the
per-op tests' cuda cases, on a GPU only."""
import importlib
import importlib.util
import os
import shutil

import pytest
import torch

from fastadv.ops._dispatch import OPS

# what setup.py looks for (an explicit $NVCC or $CUDA_HOME aside): nvcc on PATH or the
# toolkit's usual home; FASTADV_NO_CUDA=1 skips the build on purpose
NVCC = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc"
                                if os.access("/usr/local/cuda/bin/nvcc", os.X_OK) else None)
SKIPPED_ON_PURPOSE = os.environ.get("FASTADV_NO_CUDA", "").strip().lower() not in (
    "", "0", "false", "no", "off")


@pytest.mark.skipif(NVCC is None or SKIPPED_ON_PURPOSE,
                    reason="no nvcc at install time: the CUDA module is not built by design")
def test_the_cuda_module_is_built_where_nvcc_is_found_and_binds_every_op():
    assert importlib.util.find_spec("fastadv._C_cuda") is not None, (
        f"nvcc is at {NVCC} but fastadv._C_cuda was not built: see the install's warning")
    module = importlib.import_module("fastadv._C_cuda")
    for op in OPS:
        assert callable(getattr(module, op)), op
    assert callable(module.kl_div_logits_backward)
    why = module.probe()  # '' only where its CUDA runtime sees a usable GPU
    assert isinstance(why, str)
    if not torch.cuda.is_available():
        assert why != ""
