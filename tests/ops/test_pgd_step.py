"""fastadv.ops.pgd_step and its in-place form pgd_step_: every backend against the reference
(odd shapes, every dtype, eps edges, pixels on the box faces, zero gradients, channels_last),
the Triton kernel over many programs, and the argument errors of the three step ops."""
import pytest
import torch

import fastadv.ops as ops
from fastadv.ops import reference
from tests.ops.helpers import (BIG, BITWISE, EPS_VALUES, SHAPES, STEP_CASES, TRITON_DEVICE,
                               TRITON_DTYPES, backend_fn, case_id, close, kernel_module,
                               make_batch, needs_triton, poisoned, triton_inputs)

STEP_OPS = [ops.pgd_step, ops.pgd_step_, ops.pgd_step_with_mask]


@pytest.mark.parametrize("case", STEP_CASES, ids=case_id)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("sign", [True, False])
def test_pgd_step_matches_reference(case, shape, sign):
    device, backend, dtype = case
    for eps in EPS_VALUES:
        x_adv, grad, x = make_batch(shape, dtype, device)
        alpha = 2 / 255 if sign else 0.05
        expected = reference.pgd_step(x_adv, grad, x, alpha=alpha, eps=eps, sign=sign)
        actual = ops.pgd_step(x_adv, grad, x, alpha=alpha, eps=eps, sign=sign, backend=backend)
        assert actual.dtype == dtype and actual.shape == x.shape
        close(actual, expected, dtype, (device, backend) in BITWISE)
        inplace = x_adv.clone()
        returned = ops.pgd_step_(inplace, grad, x, alpha=alpha, eps=eps, sign=sign,
                                 backend=backend)
        assert returned is inplace
        close(inplace, expected, dtype, (device, backend) in BITWISE)


@pytest.mark.parametrize("case", STEP_CASES, ids=case_id)
def test_pgd_step_writes_every_output_element(case):
    device, backend, dtype = case
    x_adv, grad, x = make_batch((3, 3, 17, 19), dtype, device)
    out = poisoned(x)
    backend_fn("pgd_step", backend, device, dtype)(x_adv, grad, x, out, alpha=0.01, eps=0.03,
                                                   sign=True)
    assert not torch.isnan(out).any()
    close(out, reference.pgd_step(x_adv, grad, x, alpha=0.01, eps=0.03), dtype,
          (device, backend) in BITWISE)


@pytest.mark.parametrize("case", STEP_CASES, ids=case_id)
def test_pgd_step_channels_last(case):
    device, backend, dtype = case
    x_adv, grad, x = make_batch((4, 3, 9, 11), dtype, device)
    cl = [t.contiguous(memory_format=torch.channels_last) for t in (x_adv, grad, x)]
    out = ops.pgd_step(*cl, alpha=0.01, eps=0.03, backend=backend)
    assert out.is_contiguous(memory_format=torch.channels_last)
    close(out, reference.pgd_step(x_adv, grad, x, alpha=0.01, eps=0.03), dtype,
          (device, backend) in BITWISE)
    mixed = ops.pgd_step(cl[0], grad, x, alpha=0.01, eps=0.03, backend=backend)
    close(mixed, reference.pgd_step(x_adv, grad, x, alpha=0.01, eps=0.03), dtype,
          (device, backend) in BITWISE)


def test_pgd_step_sign_zero_gradient_keeps_point():
    x_adv, _, x = make_batch((2, 3, 5, 5), torch.float32, "cpu")
    for backend in ops.available_backends("cpu"):
        out = ops.pgd_step(x_adv, torch.zeros_like(x), x, alpha=0.1, eps=0.5, backend=backend)
        assert torch.equal(out, x_adv), backend


def test_pgd_step_projects_onto_ball_and_box():
    x_adv, grad, x = make_batch((4, 3, 8, 8), torch.float32, "cpu")
    for backend in ops.available_backends("cpu"):
        out = ops.pgd_step(x_adv, grad, x, alpha=0.5, eps=0.1, backend=backend)
        assert (out - x).abs().max() <= 0.1 + 1e-7
        assert out.min() >= 0 and out.max() <= 1
        # alpha larger than eps moves every coordinate with a nonzero gradient to a face
        moved = grad != 0
        at_face = ((out - x).abs() >= 0.1 - 1e-6) | (out == 0) | (out == 1)
        assert at_face[moved].all()


def test_in_place_step_tells_autograd_it_wrote():
    for backend in ops.available_backends("cpu"):
        x_adv, grad, x = make_batch((2, 3, 4, 4), torch.float32, "cpu")
        version = x_adv._version
        ops.pgd_step_(x_adv, grad, x, alpha=0.01, eps=0.03, backend=backend)
        assert x_adv._version > version, backend


def test_pgd_step_traces_under_torch_compile():
    x_adv, grad, x = make_batch((2, 3, 4, 4), torch.float32, "cpu")

    def step(a, g, c):
        return ops.pgd_step(a, g, c, alpha=0.01, eps=0.03) * 2

    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x_adv, grad, x), step(x_adv, grad, x))


# --- the Triton kernel (kernels/pgd_step.py) ------------------------------------------------

@needs_triton
@pytest.mark.parametrize("dtype", TRITON_DTYPES, ids=str)
@pytest.mark.parametrize("eps", [0.0, 8 / 255, 1.5])
def test_triton_step_is_bitwise_the_reference_over_many_programs(dtype, eps):
    x_adv, grad, x = triton_inputs(BIG, dtype)
    for sign, alpha in ((True, 2 / 255), (False, 0.05)):
        want = reference.pgd_step(x_adv, grad, x, alpha=alpha, eps=eps, sign=sign)
        out = poisoned(x)
        kernel_module("pgd_step").pgd_step(x_adv, grad, x, out, alpha=alpha, eps=eps, sign=sign)
        assert torch.equal(out, want), (out.float() - want.float()).abs().max()


@needs_triton
def test_triton_step_in_place_when_out_is_x_adv():
    x_adv, grad, x = triton_inputs(BIG, torch.float32, seed=1)
    want = reference.pgd_step(x_adv, grad, x, alpha=0.01, eps=0.03, sign=True)
    kernel_module("pgd_step").pgd_step(x_adv, grad, x, x_adv, alpha=0.01, eps=0.03, sign=True)
    assert torch.equal(x_adv, want)


@needs_triton
def test_triton_step_follows_the_formula_written_out():
    step = kernel_module("pgd_step").pgd_step
    x = torch.tensor([0.0, 1.0, 0.5, 0.5, 0.5, 0.2, 0.9], device=TRITON_DEVICE)
    x_adv = torch.tensor([0.0, 1.0, 0.5, 0.52, 0.48, 0.2, 0.9], device=TRITON_DEVICE)
    grad = torch.tensor([-1.0, 2.0, 0.0, 3.0, -3.0, 1e-30, -1e-30], device=TRITON_DEVICE)
    out = poisoned(x)
    step(x_adv, grad, x, out, alpha=0.05, eps=0.03, sign=True)
    # box clip at 0 and 1, sign(0) = 0, ball clip above and below, tiny gradients step fully
    expected = torch.tensor([0.0, 1.0, 0.5, 0.53, 0.47, 0.23, 0.87], device=TRITON_DEVICE)
    torch.testing.assert_close(out, expected, atol=1e-7, rtol=0)
    out_raw = poisoned(x)
    step(x_adv, grad, x, out_raw, alpha=0.001, eps=0.03, sign=False)
    torch.testing.assert_close(out_raw, torch.tensor(
        [0.0, 1.0, 0.5, 0.523, 0.477, 0.2, 0.9], device=TRITON_DEVICE), atol=1e-7, rtol=0)


# --- argument errors of the step ops ----------------------------------------------------------

def batch():
    return make_batch((2, 3, 4, 4), torch.float32, "cpu")


@pytest.mark.parametrize("op", STEP_OPS, ids=lambda f: f.__name__)
def test_step_ops_reject_bad_tensors(op):
    x_adv, grad, x = batch()
    with pytest.raises(ValueError, match="grad has shape"):
        op(x_adv, grad[:1], x, alpha=0.1, eps=0.1)
    with pytest.raises(TypeError, match="x_adv has dtype"):
        op(x_adv.double(), grad, x, alpha=0.1, eps=0.1)
    with pytest.raises(TypeError, match="x must be a floating tensor"):
        op(x_adv, grad, (x * 255).to(torch.uint8), alpha=0.1, eps=0.1)
    with pytest.raises(TypeError, match="grad must be a torch.Tensor"):
        op(x_adv, grad.tolist(), x, alpha=0.1, eps=0.1)
    with pytest.raises(ValueError, match="x_adv is on meta"):
        op(x_adv.to("meta"), grad, x, alpha=0.1, eps=0.1)


@pytest.mark.parametrize("op", STEP_OPS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("name,value,error,message", [
    ("eps", -0.1, ValueError, "eps must be >= 0.0, got -0.1"),
    ("eps", float("nan"), ValueError, "eps must be finite, got nan"),
    ("eps", float("inf"), ValueError, "eps must be finite"),
    ("eps", "8/255", TypeError, "eps must be a real number"),
    ("alpha", 0.0, ValueError, "alpha must be > 0, got 0.0"),
    ("alpha", -1.0, ValueError, "alpha must be > 0, got -1.0"),
    ("alpha", float("nan"), ValueError, "alpha must be finite"),
    ("sign", 1, TypeError, "sign must be a bool"),
])
def test_step_ops_reject_bad_hyperparameters(op, name, value, error, message):
    x_adv, grad, x = batch()
    kwargs = {"alpha": 0.1, "eps": 0.1, name: value}
    with pytest.raises(error, match=message):
        op(x_adv, grad, x, **kwargs)


def test_in_place_step_refuses_a_tensor_that_requires_grad():
    x_adv, grad, x = batch()
    with pytest.raises(ValueError, match="x_adv requires grad"):
        ops.pgd_step_(x_adv.requires_grad_(), grad, x, alpha=0.1, eps=0.1)


def test_step_ops_run_on_inference_tensors():
    # inference tensors have no version counter, which no op may need
    with torch.inference_mode():
        x_adv, grad, x = batch()
        expected = ops.pgd_step(x_adv, grad, x, alpha=0.1, eps=0.1, backend="reference")
        assert torch.equal(ops.pgd_step(x_adv, grad, x, alpha=0.1, eps=0.1), expected)
        out, _ = ops.pgd_step_with_mask(x_adv, grad, x, alpha=0.1, eps=0.1, sign=True)
        assert torch.equal(out, expected)
        assert torch.equal(ops.pgd_step_(x_adv.clone(), grad, x, alpha=0.1, eps=0.1), expected)
