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


def _nvcc():
    """The nvcc setup.py would use, found the way it looks ($NVCC, $CUDA_HOME/bin,
    $CUDA_PATH/bin, PATH, /usr/local/cuda/bin), or None. (This test runs after the install
    in the same environment, as CI does; an nvcc installed in between would mislead it.)"""
    if os.environ.get("NVCC"):
        return shutil.which(os.environ["NVCC"])
    homes = [os.environ.get(name) for name in ("CUDA_HOME", "CUDA_PATH")]
    candidates = [os.path.join(home, "bin", "nvcc") for home in homes if home]
    candidates += [shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"]
    return next((path for path in candidates
                 if path and os.path.isfile(path) and os.access(path, os.X_OK)), None)


NVCC = _nvcc()
SKIPPED_ON_PURPOSE = os.environ.get("FASTADV_NO_CUDA", "").strip().lower() not in (
    "", "0", "false", "no", "off")


@pytest.mark.skipif(NVCC is None or SKIPPED_ON_PURPOSE,
                    reason="no nvcc (or FASTADV_NO_CUDA): the CUDA module is not built by design")
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
