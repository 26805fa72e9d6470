"""fastadv.ops.pgd_step_with_mask (Fast-BAT's step fused with the box-constraint mask H_C):
every backend against the reference, the mask's semantics on the faces of the box, the Triton
kernel over many programs (its mask bitwise the reference's in half precision too), tracing
of Fast-BAT's chain of step ops, and the op's own argument errors (the step's are in
test_pgd_step.py)."""
import pytest
import torch

import fastadv.ops as ops
from fastadv.ops import reference
from tests.ops.helpers import (BIG, BITWISE, EPS_VALUES, SHAPES, STEP_CASES, TRITON_DTYPES,
                               backend_fn, case_id, close, kernel_module, make_batch,
                               needs_triton, poisoned, triton_inputs)


@pytest.mark.parametrize("case", STEP_CASES, ids=case_id)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_pgd_step_with_mask_matches_reference(case, shape):
    device, backend, dtype = case
    for eps in EPS_VALUES:
        for sign, alpha in ((False, 0.05), (True, 2 / 255)):
            x_adv, grad, x = make_batch(shape, dtype, device, seed=3)
            exp_x, exp_mask = reference.pgd_step_with_mask(x_adv, grad, x, alpha=alpha,
                                                           eps=eps, sign=sign, tol=1e-7)
            out, mask = ops.pgd_step_with_mask(x_adv, grad, x, alpha=alpha, eps=eps,
                                               sign=sign, backend=backend)
            assert mask.dtype == torch.bool and mask.shape == x.shape
            close(out, exp_x, dtype, (device, backend) in BITWISE)
            if (device, backend) in BITWISE or dtype == torch.float32:
                assert torch.equal(mask, exp_mask)
            else:
                # rounding may flip coordinates sitting on a face; nothing else may differ
                assert (mask != exp_mask).sum() <= 0.01 * mask.numel()


def test_mask_semantics_on_faces():
    x = torch.tensor([0.0, 1.0, 0.5, 0.5, 0.5, 0.02])
    x_adv = x.clone()
    grad = torch.tensor([1.0, -1.0, 1.0, -1.0, 0.0, -1.0])
    for backend in ops.available_backends("cpu"):
        out, mask = ops.pgd_step_with_mask(x_adv, grad, x, alpha=0.05, eps=0.1, sign=True,
                                           backend=backend)
        # interior moves are inside; a zero step sits at d = 0, strictly inside as well;
        # x=0 moving up by 0.05 is inside; x=0.02 moving down hits the box face 0 -> outside
        assert mask.tolist() == [True, True, True, True, True, False], backend
        out, mask = ops.pgd_step_with_mask(x_adv, grad, x, alpha=0.5, eps=0.1, sign=True,
                                           backend=backend)
        assert mask.tolist() == [False, False, False, False, True, False], backend


@pytest.mark.parametrize("case", STEP_CASES, ids=case_id)
def test_pgd_step_with_mask_writes_every_output(case):
    device, backend, dtype = case
    x_adv, grad, x = make_batch((3, 3, 17, 19), dtype, device)
    out = poisoned(x)
    mask = poisoned(x, torch.bool)
    backend_fn("pgd_step_with_mask", backend, device, dtype)(
        x_adv, grad, x, out, mask, alpha=0.05, eps=0.1, sign=False, tol=1e-7)
    exp_x, exp_mask = reference.pgd_step_with_mask(x_adv, grad, x, alpha=0.05, eps=0.1)
    assert not torch.isnan(out).any()
    assert (mask == exp_mask).float().mean() > 0.99
    assert not exp_mask.all()  # the poisoned all-True mask must have been overwritten


def test_fast_bat_chain_of_step_ops_traces_under_torch_compile():
    x_adv, grad, x = make_batch((2, 3, 4, 4), torch.float32, "cpu")

    def steps(a, g, c):
        a2, mask = ops.pgd_step_with_mask(a, g, c, alpha=0.01, eps=0.03)
        scaled = ops.masked_scale(g, mask, 0.5)
        a3 = a2.clone()
        ops.pgd_step_(a3, scaled, c, alpha=0.01, eps=0.03)
        return a3, mask

    compiled = torch.compile(steps, backend="aot_eager", fullgraph=True)
    got, got_mask = compiled(x_adv, grad, x)
    want, want_mask = steps(x_adv, grad, x)
    torch.testing.assert_close(got, want)
    assert torch.equal(got_mask, want_mask)


def test_tol_must_be_non_negative():
    x = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match="tol must be >= 0.0"):
        ops.pgd_step_with_mask(x.clone(), torch.randn_like(x), x, alpha=0.1, eps=0.1, tol=-1.0)


# --- the Triton kernel (kernels/pgd_step_with_mask.py) ----------------------------------------

@needs_triton
@pytest.mark.parametrize("dtype", TRITON_DTYPES, ids=str)
@pytest.mark.parametrize("eps", [0.0, 8 / 255, 1.5])
def test_triton_step_and_mask_are_bitwise_the_reference_over_many_programs(dtype, eps):
    x_adv, grad, x = triton_inputs(BIG, dtype)
    for sign, alpha in ((True, 2 / 255), (False, 0.05)):
        want_x, want_mask = reference.pgd_step_with_mask(x_adv, grad, x, alpha=alpha,
                                                         eps=eps, sign=sign, tol=1e-7)
        out, mask = poisoned(x), poisoned(x, torch.bool)
        kernel_module("pgd_step_with_mask").pgd_step_with_mask(
            x_adv, grad, x, out, mask, alpha=alpha, eps=eps, sign=sign, tol=1e-7)
        assert torch.equal(out, want_x)
        # Half precision included: a coordinate on a face must not flip.
        assert torch.equal(mask, want_mask), (mask != want_mask).sum()
        if eps > 0:
            assert 0 < mask.sum() < mask.numel()
