"""Test configuration.

Without a GPU, Triton kernels can only run in Triton's CPU interpreter, which must be chosen
before any kernel module is imported (it takes effect when @triton.jit decorates), so it is
set here, before fastadv is imported by any test.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.pop("FASTADV_BACKEND", None)  # a developer's shell setting must not steer the tests
