"""Every fused op on the GPU backends (triton, cuda) against the reference in float32,
float16 and bfloat16, on contiguous and channels_last operands of odd shapes; the outputs
keep the operands' layout. (tests/ops/ runs its own cases on the GPU too: their ids name the
device, ``-k cuda``; these add the layouts and bf16 everywhere.)"""
import pytest
import torch

import fastadv.ops as ops
from fastadv.ops import reference
from tests.ops.helpers import close, make_batch

BACKENDS = [b for b in ("triton", "cuda")
            if torch.cuda.is_available() and b in ops.available_backends("cuda")]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
SHAPES = [(7, 3, 31, 33), (1, 3, 1, 1), (5, 3, 17, 9)]
LAYOUTS = ["contiguous", "channels_last"]
CASES = [(b, d, s, l) for b in BACKENDS for d in DTYPES for s in SHAPES for l in LAYOUTS]


def case_name(case):
    backend, dtype, shape, layout = case
    return f"{backend}-{str(dtype)[6:]}-{'x'.join(map(str, shape))}-{layout}"


def operands(shape, dtype, layout, seed=0):
    tensors = make_batch(shape, dtype, "cuda", seed=seed)
    if layout == "channels_last":
        tensors = [t.contiguous(memory_format=torch.channels_last) for t in tensors]
    return tensors


def same_layout(out, like):
    if like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous():
        return out.is_contiguous(memory_format=torch.channels_last)
    return out.is_contiguous()


@pytest.fixture(params=CASES, ids=case_name)
def case(request):
    if not BACKENDS:
        pytest.skip("no GPU backend is built (triton or the cuda extension)")
    return request.param


@pytest.fixture(params=[(b, d) for b in BACKENDS for d in DTYPES],
                ids=lambda bd: f"{bd[0]}-{str(bd[1])[6:]}")
def backend_dtype(request):
    """(backend, dtype) alone, for the ops that take no image shape or layout."""
    return request.param


def test_pgd_step(case):
    backend, dtype, shape, layout = case
    for sign, alpha in ((True, 2 / 255), (False, 0.05)):
        x_adv, grad, x = operands(shape, dtype, layout)
        out = ops.pgd_step(x_adv, grad, x, alpha=alpha, eps=8 / 255, sign=sign, backend=backend)
        close(out, reference.pgd_step(x_adv, grad, x, alpha=alpha, eps=8 / 255, sign=sign),
              dtype, bitwise=False)
        assert same_layout(out, x)
        inplace = x_adv.clone()
        ops.pgd_step_(inplace, grad, x, alpha=alpha, eps=8 / 255, sign=sign, backend=backend)
        close(inplace, out, dtype, bitwise=False)


def test_pgd_step_with_mask_and_masked_scale(case):
    backend, dtype, shape, layout = case
    x_adv, grad, x = operands(shape, dtype, layout, seed=1)
    out, mask = ops.pgd_step_with_mask(x_adv, grad, x, alpha=0.05, eps=8 / 255, backend=backend)
    exp_out, exp_mask = reference.pgd_step_with_mask(x_adv, grad, x, alpha=0.05, eps=8 / 255)
    close(out, exp_out, dtype, bitwise=False)
    # rounding may flip coordinates sitting on a face of the box; nothing else may differ
    assert (mask != exp_mask).sum() <= max(1, 0.01 * mask.numel())
    assert same_layout(out, x) and same_layout(mask, x)
    scaled = ops.masked_scale(grad, exp_mask, 0.1, backend=backend)
    close(scaled, reference.masked_scale(grad, exp_mask, 0.1), dtype, bitwise=False)


def test_random_start(case):
    backend, dtype, shape, layout = case
    _, _, x = operands(shape, dtype, layout, seed=2)
    eps = 8 / 255
    torch.manual_seed(0)
    first = ops.random_start(x, eps, backend=backend)
    second = ops.random_start(x, eps, backend=backend)
    slack = {torch.float32: 1e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[dtype]
    assert ((first.float() - x.float()).abs() <= eps + slack).all()
    assert first.min() >= 0 and first.max() <= 1
    if x.numel() > 100:
        assert not torch.equal(first, second)
    normal = ops.random_start(x, eps, kind="normal", scale=0.01, clamp=False, backend=backend)
    assert (normal.float() - x.float()).abs().max() < 0.1


@pytest.mark.parametrize("rows,classes", [(1, 10), (33, 7), (129, 100)])
def test_kl_div_logits(backend_dtype, rows, classes):
    backend, dtype = backend_dtype
    g = torch.Generator().manual_seed(3)
    q = (torch.randn(rows, classes, generator=g) * 3).to("cuda", dtype).requires_grad_(True)
    p = (torch.randn(rows, classes, generator=g) * 3).to("cuda", dtype).requires_grad_(True)
    fused = ops.kl_div_logits(q, p, reduction="none", backend=backend)
    expected = ops.kl_div_logits(q, p, reduction="none", backend="reference")
    tol = {torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    torch.testing.assert_close(fused.float(), expected.float(), atol=tol, rtol=tol)
    upstream = torch.rand(rows, device="cuda", dtype=dtype)
    grads = torch.autograd.grad((fused * upstream).sum(), (q, p))
    expected_grads = torch.autograd.grad((expected * upstream).sum(), (q, p))
    for a, b in zip(grads, expected_grads):
        torch.testing.assert_close(a.float(), b.float(), atol=tol, rtol=tol)
