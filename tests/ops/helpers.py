"""What the op tests share: the (device, backend, dtype) cases available here, input
batches with values on the box faces, the comparison against the reference, the one door to a
backend's own function, and the Triton kernel settings.

Backend functions are reached through the dispatcher only for the tests that hand a backend a
poisoned output buffer (NaN-filled) or call it on operands the public ops would never pass;
everything else goes through the public ops.
"""
import importlib

import pytest
import torch

import fastadv.ops as ops
from fastadv.ops import _dispatch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CASES = [(dev, b) for dev in DEVICES for b in ops.available_backends(dev)]
KERNEL_CASES = [c for c in CASES if c[1] != "reference"]


def dtypes_for(backend, device):
    out = [torch.float32, torch.float16]
    if backend in ("reference", "cuda") or (backend == "triton" and device == "cuda"):
        out.append(torch.bfloat16)
    return out


STEP_CASES = [(dev, b, dt) for dev, b in CASES for dt in dtypes_for(b, dev)]
BITWISE = {("cpu", "cpp"), ("cpu", "reference"), ("cuda", "reference")}
SHAPES = [(7, 3, 31, 33), (1, 1, 1, 1), (0, 3, 4, 4), (2, 5)]
EPS_VALUES = [0.0, 8 / 255, 1.0, 1.5]


def case_id(case):
    return "-".join(str(c).replace("torch.", "") for c in case)


def make_batch(shape, dtype, device, seed=0, eps=8 / 255):
    """x with pixels exactly at 0 and 1, x_adv inside the eps-ball, grad with exact zeros."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    if x.numel() >= 4:
        flat = x.view(-1)
        flat[::5] = 0.0
        flat[1::7] = 1.0
    x_adv = (x + (torch.rand(shape, generator=g) * 2 - 1) * eps).clamp(0, 1)
    grad = torch.randn(shape, generator=g)
    if grad.numel() >= 3:
        grad.view(-1)[::3] = 0.0
    return [t.to(device=device, dtype=dtype) for t in (x_adv, grad, x)]


def close(actual, expected, dtype, bitwise):
    if bitwise and dtype == torch.float32:
        assert torch.equal(actual, expected), (actual - expected).abs().max()
    else:
        tol = {torch.float32: 1e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
        torch.testing.assert_close(actual.float(), expected.float(), atol=tol, rtol=0)


def backend_fn(op, backend, device="cpu", dtype=torch.float32):
    """The function ``backend`` registered for ``op`` (contracts in fastadv/ops/_dispatch.py)."""
    return _dispatch.resolve(op, device, dtype, backend).fn


def poisoned(like, dtype=None):
    """An output buffer a kernel must overwrite entirely: NaN (floating) or True (bool)."""
    out = torch.empty_like(like, dtype=dtype)
    return out.fill_(float("nan")) if out.is_floating_point() else out.fill_(True)


# --- Triton kernels (fastadv.kernels), on a GPU or in Triton's CPU interpreter ------------
HAS_TRITON = "triton" in ops.available_backends("cuda" if torch.cuda.is_available() else "cpu")
if HAS_TRITON:
    _kernels = importlib.import_module("fastadv.kernels")
    TRITON_DEVICE = "cuda" if torch.cuda.is_available() and not _kernels.INTERPRETED else "cpu"
    ELEMENTWISE_BLOCK = _kernels.ELEMENTWISE_BLOCK
else:
    TRITON_DEVICE, ELEMENTWISE_BLOCK = "cpu", 1024
TRITON_DTYPES = [torch.float32, torch.float16] + (
    [torch.bfloat16] if TRITON_DEVICE == "cuda" else [])
# More than one elementwise program, and a ragged last one.
BIG = (ELEMENTWISE_BLOCK * 2 + 345,)


def _interpreter_loops_fail() -> bool:
    """triton < 3.7's CPU interpreter hands a kernel's int arguments over as 1-element
    arrays, which NumPy >= 2.5 no longer turns into the Python int a runtime-bound loop
    needs (TypeError: only 0-dimensional arrays can be converted to Python scalars)."""
    if not HAS_TRITON or TRITON_DEVICE != "cpu":
        return False
    import numpy
    import triton
    return (_major_minor(triton.__version__) < (3, 7)
            and _major_minor(numpy.__version__) >= (2, 5))


def _major_minor(version: str) -> tuple:
    return tuple(int(part) for part in version.split(".")[:2])


def _interpreter_error() -> type:
    """The error the interpreter wraps a kernel's failure in (and nothing broader, so a
    wrong result, an AssertionError, still fails the test)."""
    try:
        from triton.runtime.errors import InterpreterError
    except ImportError:  # no triton: the mark's condition is False anyway
        return RuntimeError
    return InterpreterError


# a kernel with a loop over a runtime bound, where the interpreter cannot run one (an
# upstream bug, not fastadv's: strict, so the mark goes once a release fixes it)
interpreter_loop_bug = pytest.mark.xfail(
    _interpreter_loops_fail(), strict=True, raises=_interpreter_error(),
    reason="triton < 3.7's interpreter with NumPy >= 2.5 cannot run a runtime-bound loop")

needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton backend not available here "
                                  "(no GPU, and TRITON_INTERPRET=1 not set before import)")


def kernel_module(op):
    """The Triton kernel module of ``op`` (kernels/<op>.py, installed as fastadv.kernels)."""
    return importlib.import_module(f"fastadv.kernels.{op}")


def triton_inputs(shape, dtype, seed=0, eps=8 / 255):
    """make_batch on the Triton device, always with pixels on the faces and zero gradients."""
    return make_batch(shape, dtype, TRITON_DEVICE, seed=seed, eps=eps)
