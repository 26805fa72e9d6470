"""Every fused op on every backend available here against the pure-PyTorch reference."""
import math

import pytest
import torch

import fastadv.ops as ops
from fastadv.ops import _dispatch, reference

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


def backend_fn(op, backend):
    return _dispatch._TABLE[op][backend][0]


SHAPES = [(7, 3, 31, 33), (1, 1, 1, 1), (0, 3, 4, 4), (2, 5)]
EPS_VALUES = [0.0, 8 / 255, 1.0, 1.5]


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
    out = torch.full_like(x, float("nan"))
    backend_fn("pgd_step", backend)(x_adv, grad, x, out, alpha=0.01, eps=0.03, sign=True)
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
    out = torch.full_like(x, float("nan"))
    mask = torch.ones_like(x, dtype=torch.bool)
    backend_fn("pgd_step_with_mask", backend)(x_adv, grad, x, out, mask, alpha=0.05, eps=0.1,
                                              sign=False, tol=1e-7)
    exp_x, exp_mask = reference.pgd_step_with_mask(x_adv, grad, x, alpha=0.05, eps=0.1)
    assert not torch.isnan(out).any()
    assert (mask == exp_mask).float().mean() > 0.99
    assert not exp_mask.all()  # the poisoned all-True mask must have been overwritten


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
    out = torch.full_like(g, float("nan"))
    backend_fn("masked_scale", backend)(g, x > 0.5, out, scale=0.1)
    assert not torch.isnan(out).any()


@pytest.mark.parametrize("case", STEP_CASES, ids=case_id)
def test_random_start_uniform(case):
    device, backend, dtype = case
    x = torch.rand(64, 3, 16, 16, device=device).to(dtype)
    eps = 0.1
    torch.manual_seed(5)
    a = ops.random_start(x, eps, backend=backend)
    torch.manual_seed(5)
    b = ops.random_start(x, eps, backend=backend)
    c = ops.random_start(x, eps, backend=backend)
    assert torch.equal(a, b), "same seed must give the same start"
    assert not torch.equal(a, c), "the next draw must differ"
    d = (a.float() - x.float())
    slack = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}[dtype]
    assert d.abs().max() <= eps + slack and a.min() >= 0 and a.max() <= 1
    inside = (x.float() > eps) & (x.float() < 1 - eps)
    noise = d[inside]
    assert abs(noise.mean().item()) < 0.01
    assert abs(noise.var().item() - eps ** 2 / 3) < 0.1 * eps ** 2 / 3
    assert noise.max() > 0.9 * eps and noise.min() < -0.9 * eps
    gen = torch.Generator().manual_seed(11)
    e = ops.random_start(x, eps, backend=backend, generator=gen)
    gen.manual_seed(11)
    assert torch.equal(e, ops.random_start(x, eps, backend=backend, generator=gen))


@pytest.mark.parametrize("case", STEP_CASES, ids=case_id)
def test_random_start_normal_and_unclamped(case):
    device, backend, dtype = case
    x = torch.full((32, 3, 16, 16), 0.5, device=device, dtype=dtype)
    out = ops.random_start(x, 0.0, kind="normal", scale=0.01, backend=backend)
    noise = out.float() - 0.5
    assert abs(noise.std().item() - 0.01) < 0.001 and abs(noise.mean().item()) < 5e-4
    edge = torch.zeros(4096, device=device, dtype=dtype)
    clamped = ops.random_start(edge, 0.2, backend=backend)
    free = ops.random_start(edge, 0.2, clamp=False, backend=backend)
    assert clamped.min() >= 0 and (clamped == 0).float().mean() > 0.4
    assert free.min() < -0.15 and free.abs().max() <= 0.2 + 1e-3
    assert torch.equal(ops.random_start(edge, 0.2, kind="zero", backend=backend), edge)
    assert ops.random_start(edge[:0], 0.2, backend=backend).shape == (0,)
    poisoned = torch.full_like(x, float("nan"))
    backend_fn("random_start", backend)(x, poisoned, eps=0.1, kind="uniform", scale=0.0,
                                        clamp=True, generator=torch.Generator().manual_seed(0))
    assert not torch.isnan(poisoned).any()


KL_DTYPES = [(dev, b, dt) for dev, b, dt in STEP_CASES]
KL_SHAPES = [(16, 10), (5, 100), (3, 1), (0, 10), (2, 3, 7)]


def kl_tolerance(dtype):
    return {torch.float32: (1e-5, 1e-5), torch.float16: (5e-3, 5e-3),
            torch.bfloat16: (3e-2, 3e-2)}[dtype]


@pytest.mark.parametrize("case", KL_DTYPES, ids=case_id)
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


@pytest.mark.parametrize("case", KL_DTYPES, ids=case_id)
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
    grad_q, grad_p = backend_fn("kl_div_rows_backward", backend)(q, p, torch.ones(33, device=device))
    exp_q, exp_p = reference.kl_div_rows_backward(q, p, torch.ones(33, device=device))
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
        (reference.kl_div_rows(q, p) * g).sum(), (q, p))
    formula_q, formula_p = reference.kl_div_rows_backward(q.detach(), p.detach(), g)
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


def test_ops_trace_under_torch_compile():
    x_adv, grad, x = make_batch((2, 3, 4, 4), torch.float32, "cpu")

    def step(a, g, c):
        return ops.pgd_step(a, g, c, alpha=0.01, eps=0.03) * 2

    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x_adv, grad, x), step(x_adv, grad, x))


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


def test_in_place_step_tells_autograd_it_wrote():
    for backend in ops.available_backends("cpu"):
        x_adv, grad, x = make_batch((2, 3, 4, 4), torch.float32, "cpu")
        version = x_adv._version
        ops.pgd_step_(x_adv, grad, x, alpha=0.01, eps=0.03, backend=backend)
        assert x_adv._version > version, backend


def test_all_step_ops_trace_under_torch_compile():
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


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_single_channel_images_mixing_contiguous_and_channels_last(case):
    # a 1-channel image is both contiguous and channels_last, with different C-strides
    device, backend = case
    x_adv, grad, x = make_batch((4, 1, 8, 8), torch.float32, device)
    # torch keeps the first layout when asked for channels_last; a freshly allocated
    # channels_last tensor (as autograd may return) has C-stride 1 instead of 64
    grad_cl = torch.empty_like(grad, memory_format=torch.channels_last).copy_(grad)
    assert grad_cl.stride() == (64, 1, 8, 1) and grad.stride() == (64, 64, 8, 1)
    expected = reference.pgd_step(x_adv, grad, x, alpha=0.01, eps=0.03)
    close(ops.pgd_step(x_adv, grad_cl, x, alpha=0.01, eps=0.03, backend=backend), expected,
          torch.float32, (device, backend) in BITWISE)
    out, mask = ops.pgd_step_with_mask(x_adv, grad_cl, x, alpha=0.01, eps=0.03,
                                       backend=backend)
    close(out, reference.pgd_step(x_adv, grad, x, alpha=0.01, eps=0.03, sign=False), torch.float32,
          (device, backend) in BITWISE)
    close(ops.masked_scale(grad_cl, mask, 0.5, backend=backend),
          reference.masked_scale(grad, mask, 0.5), torch.float32, (device, backend) in BITWISE)
    inplace = x_adv.clone()
    ops.pgd_step_(inplace, grad_cl, x, alpha=0.01, eps=0.03, backend=backend)
    close(inplace, expected, torch.float32, (device, backend) in BITWISE)
