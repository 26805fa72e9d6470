"""fastadv.ops.kl_div_logits: every backend's value and gradient against the float64
reference (every reduction, odd shapes, extreme logits, zero-probability targets, empty
batches), the once-differentiable fused backward, tracing under torch.compile, the Triton
kernel's tiling (one tile, chunked wide rows, saturated rows) and the argument errors. The cpp
kernel's accuracy paths have their own tests in test_backend_cpp.py."""
import pytest
import torch

import fastadv.ops as ops
from fastadv.ops import reference
from tests.ops.helpers import (KERNEL_CASES, STEP_CASES, TRITON_DEVICE, TRITON_DTYPES,
                               backend_fn, case_id, interpreter_loop_bug, kernel_module,
                               needs_triton)

KL_SHAPES = [(16, 10), (5, 100), (3, 1), (0, 10), (2, 3, 7)]


def kl_tolerance(dtype):
    return {torch.float32: (1e-5, 1e-5), torch.float16: (5e-3, 5e-3),
            torch.bfloat16: (3e-2, 3e-2)}[dtype]


@pytest.mark.parametrize("case", STEP_CASES, ids=case_id)
@pytest.mark.parametrize("shape", KL_SHAPES, ids=str)
def test_kl_div_logits_value_and_gradient(case, shape):
    device, backend, dtype = case
    g = torch.Generator().manual_seed(1)
    q = (torch.randn(shape, generator=g) * 3).to(device=device, dtype=dtype)
    p = (torch.randn(shape, generator=g) * 3).to(device=device, dtype=dtype)
    upstream = torch.randn(shape[:-1], generator=g).to(device=device, dtype=dtype)
    atol, rtol = kl_tolerance(dtype)
    for reduction in ("none", "sum", "batchmean"):
        q1, p1 = q.clone().requires_grad_(), p.clone().requires_grad_()
        q2, p2 = q.double().requires_grad_(), p.double().requires_grad_()
        got = ops.kl_div_logits(q1, p1, reduction=reduction, backend=backend)
        want = ops.kl_div_logits(q2, p2, reduction=reduction, backend="reference")
        assert got.dtype == dtype
        torch.testing.assert_close(got.double(), want, atol=atol, rtol=rtol)
        weight = upstream if reduction == "none" else torch.tensor(-1.7, device=device)
        (got * weight).sum().backward()
        (want * weight.double()).sum().backward()
        torch.testing.assert_close(q1.grad.double(), q2.grad, atol=atol, rtol=rtol)
        torch.testing.assert_close(p1.grad.double(), p2.grad, atol=atol, rtol=rtol)


@pytest.mark.parametrize("case", STEP_CASES, ids=case_id)
def test_kl_div_logits_is_stable_for_large_logits(case):
    device, backend, dtype = case
    big = 1e4 if dtype == torch.float32 else 3e3
    q = torch.tensor([[big, 0.0, -big], [0.0, 0.0, 0.0]], device=device, dtype=dtype)
    p = torch.tensor([[0.0, big, 0.0], [0.0, 0.0, 0.0]], device=device, dtype=dtype)
    rows = ops.kl_div_logits(q, p, reduction="none", backend=backend).float()
    assert torch.isfinite(rows).all()
    assert abs(rows[0].item() - big) / big < 1e-2 and abs(rows[1].item()) < 1e-3
    q.requires_grad_()
    ops.kl_div_logits(q, p, reduction="sum", backend=backend).backward()
    assert torch.isfinite(q.grad).all()


@pytest.mark.parametrize("case", KERNEL_CASES, ids=case_id)
def test_kl_backward_writes_every_element(case):
    device, backend = case
    q = torch.randn(33, 17, device=device)
    p = torch.randn(33, 17, device=device)
    ones = torch.ones(33, device=device)
    grad_q, grad_p = backend_fn("kl_div_logits_backward", backend, device)(q, p, ones)
    exp_q, exp_p = reference.kl_div_logits_backward(q, p, ones)
    torch.testing.assert_close(grad_q, exp_q, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(grad_p, exp_p, atol=1e-6, rtol=1e-5)


def test_kl_div_logits_gradcheck_float64():
    q = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    p = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    for reduction in ("none", "sum", "batchmean"):
        assert torch.autograd.gradcheck(
            lambda a, b: ops.kl_div_logits(a, b, reduction=reduction), (q, p))
    assert torch.autograd.gradgradcheck(lambda a, b: ops.kl_div_logits(a, b), (q, p))
    # the fused backward formula itself, evaluated in float64 through the reference rows
    g = torch.randn(4, dtype=torch.float64)
    auto_q, auto_p = torch.autograd.grad(
        (reference.kl_div_logits(q, p) * g).sum(), (q, p))
    formula_q, formula_p = reference.kl_div_logits_backward(q.detach(), p.detach(), g)
    torch.testing.assert_close(formula_q, auto_q)
    torch.testing.assert_close(formula_p, auto_p)


@pytest.mark.parametrize("case", KERNEL_CASES, ids=case_id)
def test_fused_kl_refuses_double_backward(case):
    device, backend = case
    q = torch.randn(3, 5, device=device, requires_grad=True)
    p = torch.randn(3, 5, device=device)
    loss = ops.kl_div_logits(q, p, backend=backend)
    (g,) = torch.autograd.grad(loss, q, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()


def test_kl_matches_torch_kl_div():
    q = torch.randn(8, 10)
    p = torch.randn(8, 10)
    expected = torch.nn.functional.kl_div(torch.log_softmax(q, 1), torch.softmax(p, 1),
                                          reduction="batchmean")
    for backend in ops.available_backends("cpu"):
        torch.testing.assert_close(ops.kl_div_logits(q, p, backend=backend), expected)


def test_empty_batch_reductions():
    q = torch.randn(0, 10, requires_grad=True)
    for backend in ops.available_backends("cpu"):
        for reduction in ("sum", "batchmean"):
            out = ops.kl_div_logits(q, q.detach(), reduction=reduction, backend=backend)
            assert out.item() == 0.0
        assert ops.kl_div_logits(q, q.detach(), reduction="none", backend=backend).shape == (0,)


def test_kl_zero_probability_target_counts_as_zero():
    q = torch.randn(3, 5, requires_grad=True)
    p = torch.randn(3, 5)
    p[:, 1] = float("-inf")  # a class the target gives probability 0
    expected = torch.nn.functional.kl_div(torch.log_softmax(q, 1), torch.softmax(p, 1),
                                          reduction="sum")
    for backend in ops.available_backends("cpu"):
        q.grad = None
        value = ops.kl_div_logits(q, p, reduction="sum", backend=backend)
        torch.testing.assert_close(value, expected.detach())
        value.backward()
        assert torch.isfinite(q.grad).all(), backend


@pytest.mark.parametrize("case", KERNEL_CASES, ids=case_id)
def test_fused_kl_traces_under_torch_compile(case):
    device, backend = case
    q = torch.randn(4, 10, device=device, requires_grad=True)
    p = torch.randn(4, 10, device=device)

    def loss(a, b):
        return ops.kl_div_logits(a, b, backend=backend) * 3

    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    (got,) = torch.autograd.grad(compiled(q, p), q)
    (want,) = torch.autograd.grad(loss(q, p), q)
    torch.testing.assert_close(got, want)


def test_kl_errors():
    q = torch.randn(3, 4)
    with pytest.raises(ValueError, match="reduction must be one of"):
        ops.kl_div_logits(q, q, reduction="mean")
    with pytest.raises(ValueError, match="logits_p has shape"):
        ops.kl_div_logits(q, q[:, :3])
    with pytest.raises(TypeError, match="logits_p has dtype"):
        ops.kl_div_logits(q, q.double())
    with pytest.raises(TypeError, match="logits_q must be a floating tensor"):
        ops.kl_div_logits(q.long(), q.long())
    with pytest.raises(ValueError, match="non-empty last"):
        ops.kl_div_logits(torch.randn(3, 0), torch.randn(3, 0))


# --- the Triton kernel (kernels/kl_div_logits.py) -------------------------------------------

def kl_inputs(rows, cols, dtype, seed=0, spread=3.0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(rows, cols, generator=g) * spread
    p = torch.randn(rows, cols, generator=g) * spread
    w = torch.randn(rows, generator=g)
    return [t.to(TRITON_DEVICE, dtype) for t in (q, p, w)]


def check_triton_kl(q, p, w, magnitude=1.0):
    """``magnitude``: the logits' scale, since log P - log Q carries absolute errors of
    float32 rounding at that scale."""
    kernel = kernel_module("kl_div_logits")
    tol = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[q.dtype]
    tol *= magnitude
    got, want = kernel.kl_div_logits(q, p), reference.kl_div_logits(q, p)
    assert got.dtype == q.dtype and got.shape == (q.shape[0],)
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)
    got_q, got_p = kernel.kl_div_logits_backward(q, p, w)
    want_q, want_p = reference.kl_div_logits_backward(q, p, w)
    torch.testing.assert_close(got_q.float(), want_q.float(), atol=tol, rtol=0)
    torch.testing.assert_close(got_p.float(), want_p.float(), atol=tol, rtol=0)
    return got


# Padding columns and rows past the batch must never produce a NaN, even discarded
# (the interpreter reports it as numpy's RuntimeWarning).
NO_NAN_ON_THE_WAY = pytest.mark.filterwarnings("error::RuntimeWarning")


@needs_triton
@NO_NAN_ON_THE_WAY
@pytest.mark.parametrize("dtype", TRITON_DTYPES, ids=str)
@pytest.mark.parametrize("rows,cols", [(1, 1), (5, 10), (37, 100), (3, 1000)])
def test_triton_kl_rows_one_tile(dtype, rows, cols):
    per_program, _, single, _ = kernel_module("kl_div_logits").row_tiling(rows, cols)
    assert single
    check_triton_kl(*kl_inputs(rows, cols, dtype))


@needs_triton
@interpreter_loop_bug
@NO_NAN_ON_THE_WAY
@pytest.mark.parametrize("dtype", TRITON_DTYPES, ids=str)
def test_triton_kl_rows_chunked_path_for_wide_rows(dtype, monkeypatch):
    # The chunked path serves rows wider than MAX_BLOCK_C; shrink the limit so a small
    # tensor walks three chunks, the last one ragged.
    kernel = kernel_module("kl_div_logits")
    monkeypatch.setattr(kernel, "MAX_BLOCK_C", 32)
    per_program, block_c, single, _ = kernel.row_tiling(6, 75)
    assert not single and block_c == 32
    q, p, w = kl_inputs(6, 75, dtype, seed=1)
    q[2, 70] = 40.0  # the row maximum sits in the ragged last chunk
    p[3, 5] = 40.0   # and here in the first: the running max must rescale later chunks
    check_triton_kl(q, p, w)


@needs_triton
@NO_NAN_ON_THE_WAY
def test_triton_kl_rows_handle_saturated_and_equal_rows():
    q, p, w = kl_inputs(9, 33, torch.float32, seed=2, spread=300.0)
    p[4] = q[4]  # identical rows: KL is exactly computed as 0 up to rounding
    got = check_triton_kl(q, p, w, magnitude=1000.0)
    assert torch.isfinite(got).all() and abs(float(got[4])) < 1e-5
