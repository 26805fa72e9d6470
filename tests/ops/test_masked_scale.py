"""fastadv.ops.masked_scale (Fast-BAT's v = H ⊙ g / lambda): every backend against the
reference, NaN and inf kept where the reference keeps them (Triton kernel), and its argument
errors."""
import math

import pytest
import torch

import fastadv.ops as ops
from fastadv.ops import reference
from tests.ops.helpers import (BIG, BITWISE, SHAPES, STEP_CASES, TRITON_DEVICE, TRITON_DTYPES,
                               backend_fn, case_id, close, kernel_module, make_batch,
                               needs_triton, poisoned)


@pytest.mark.parametrize("case", STEP_CASES, ids=case_id)
def test_masked_scale_matches_reference(case):
    device, backend, dtype = case
    for shape in SHAPES:
        _, g, x = make_batch(shape, dtype, device)
        mask = x > 0.4
        for scale in (0.1, 1.0, -2.5, 0.0):
            expected = reference.masked_scale(g, mask, scale)
            actual = ops.masked_scale(g, mask, scale, backend=backend)
            close(actual, expected, dtype, (device, backend) in BITWISE)
    _, g, x = make_batch((3, 5, 7), dtype, device)
    out = poisoned(g)
    backend_fn("masked_scale", backend, device, dtype)(g, x > 0.5, out, scale=0.1)
    assert not torch.isnan(out).any()


def test_masked_scale_errors():
    g = torch.randn(3, 4)
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        ops.masked_scale(g, torch.ones(3, 4), 0.1)
    with pytest.raises(ValueError, match="mask has shape"):
        ops.masked_scale(g, torch.ones(4, 3, dtype=torch.bool), 0.1)
    with pytest.raises(ValueError, match="scale must be finite"):
        ops.masked_scale(g, g > 0, math.inf)
    with pytest.raises(TypeError, match="g must be a floating tensor"):
        ops.masked_scale(g.long(), g > 0, 0.1)


@needs_triton
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0
@pytest.mark.parametrize("dtype", TRITON_DTYPES, ids=str)
def test_triton_masked_scale_keeps_nan_where_the_reference_does(dtype):
    g = torch.randn(BIG, generator=torch.Generator().manual_seed(2)).to(TRITON_DEVICE, dtype)
    g[7], g[8] = float("nan"), float("inf")
    mask = torch.rand(BIG, generator=torch.Generator().manual_seed(3)).to(TRITON_DEVICE) > 0.4
    mask[7], mask[8] = False, False
    out = poisoned(g)
    kernel_module("masked_scale").masked_scale(g, mask, out, scale=0.37)
    want = reference.masked_scale(g, mask, 0.37)
    torch.testing.assert_close(out, want, equal_nan=True, atol=0, rtol=0)
    assert torch.isnan(out[7]) and torch.isnan(out[8])  # NaN * 0 and inf * 0, as in torch
