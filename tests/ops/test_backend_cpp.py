"""The compiled C++/OpenMP extension (fastadv._C from csrc/cpu/, the "cpp" backend): what
the per-op tests do not cover: it is built, its float16 conversions are exact for every half
value, results do not depend on the OpenMP thread count (large tensors take the parallel
path), the in-kernel RNG is reproducible and has the right moments, the vectorised KL stays
accurate on extreme logits, and the wrappers (fastadv/ops/_compiled.py) refuse operands that
are not flat alike. Its registration is checked in test_dispatch.py."""
import math

import pytest
import torch

import fastadv.ops as ops
from fastadv.ops import reference
from tests.ops.helpers import backend_fn

_C = pytest.importorskip("fastadv._C", reason="the C++ extension is not built (pip install -e .)")


def cpp(op):
    return backend_fn(op, "cpp")


@pytest.fixture
def threads():
    """Runs a body under several OpenMP team sizes and restores torch's setting."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_cpp_backend_is_built_and_available():
    assert "cpp" in ops.available_backends("cpu")
    info = _C.build_info()
    assert info["max_threads"] >= 1 and isinstance(info["openmp"], bool)


def all_halves():
    return torch.arange(-2 ** 15, 2 ** 15, dtype=torch.int32).to(torch.int16).view(torch.float16)


def same_bits(a, b):
    """Bitwise equality where NaNs only need to be NaN in both."""
    nan = torch.isnan(a)
    assert torch.equal(nan, torch.isnan(b))
    return torch.equal(a[~nan].view(torch.int16), b[~nan].view(torch.int16))


@pytest.mark.parametrize("scale", [1.0, 0.1, 3.7, 1e-5, 1e4])
def test_float16_round_trip_and_rounding_for_every_half(scale):
    g = all_halves()
    mask = torch.ones_like(g, dtype=torch.bool)
    mask[::3] = False
    out = torch.full_like(g, float("nan"))
    cpp("masked_scale")(g, mask, out, scale=scale)
    # scale 1 is a pure load/store round trip; others round float products (subnormal
    # results, overflow to inf, ties) to half like torch does
    assert same_bits(out, reference.masked_scale(g, mask, scale))


def big_batch(dtype, channels_last=False):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 3, 33, 31, generator=g)  # 196k elements: several OpenMP chunks
    x.view(-1)[::7] = 1.0
    x_adv = (x + (torch.rand(x.shape, generator=g) * 2 - 1) * 0.03).clamp(0, 1)
    grad = torch.randn(x.shape, generator=g)
    grad.view(-1)[::5] = 0.0
    ts = [t.to(dtype) for t in (x_adv, grad, x)]
    if channels_last:
        ts = [t.contiguous(memory_format=torch.channels_last) for t in ts]
    return ts


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("channels_last", [False, True])
def test_parallel_steps_bitwise_equal_reference_for_any_thread_count(threads, dtype,
                                                                     channels_last):
    x_adv, grad, x = big_batch(dtype, channels_last)
    exp_x, exp_mask = reference.pgd_step_with_mask(x_adv, grad, x, alpha=0.02, eps=0.03,
                                                   sign=False, tol=1e-7)
    exp_sign = reference.pgd_step(x_adv, grad, x, alpha=2 / 255, eps=8 / 255)
    for n in (1, 2, 3):
        torch.set_num_threads(n)
        out, mask = ops.pgd_step_with_mask(x_adv, grad, x, alpha=0.02, eps=0.03,
                                           backend="cpp")
        assert torch.equal(out, exp_x) and torch.equal(mask, exp_mask), n
        inplace = x_adv.clone()
        ops.pgd_step_(inplace, grad, x, alpha=2 / 255, eps=8 / 255, backend="cpp")
        assert torch.equal(inplace, exp_sign), n
        assert inplace.stride() == x_adv.stride()


def test_random_start_is_reproducible_and_thread_count_independent(threads):
    x = torch.rand(200_000)
    draws = []
    for n in (1, 2):
        torch.set_num_threads(n)
        g = torch.Generator().manual_seed(123)
        draws.append(ops.random_start(x, 0.1, generator=g, backend="cpp"))
    assert torch.equal(draws[0], draws[1])
    other = ops.random_start(x, 0.1, generator=torch.Generator().manual_seed(124),
                             backend="cpp")
    assert not torch.equal(draws[0], other)
    torch.manual_seed(5)
    a = ops.random_start(x, 0.1, backend="cpp")
    torch.manual_seed(5)
    assert torch.equal(a, ops.random_start(x, 0.1, backend="cpp"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_random_start_moments_and_bounds(dtype):
    n, eps, scale = 400_000, 0.25, 0.05
    x = torch.full((n,), 0.5, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    u = ops.random_start(x, eps, generator=g, backend="cpp").double() - 0.5
    assert u.abs().max() <= eps + 1e-3 and u.abs().max() > 0.99 * eps
    assert abs(u.mean()) < 5 * eps / math.sqrt(3 * n)
    assert abs(u.var() / (eps ** 2 / 3) - 1) < 0.02
    # the 10 deciles of a uniform are equally filled (catches a lopsided or lumpy generator)
    counts = torch.histc(u.float(), bins=10, min=-eps, max=eps)
    assert (counts / n - 0.1).abs().max() < 0.01
    z = ops.random_start(x, eps, kind="normal", scale=scale, clamp=False, generator=g,
                         backend="cpp").double() - 0.5
    assert abs(z.mean()) < 5 * scale / math.sqrt(n)
    assert abs(z.std() / scale - 1) < 0.02
    assert abs(((z / scale).abs() < 1).double().mean() - 0.6827) < 0.01
    clamped = ops.random_start(torch.zeros(1000, dtype=dtype), 0.5, backend="cpp")
    assert clamped.min() == 0 and clamped.max() <= 0.5 and (clamped > 0).any()


@pytest.mark.parametrize("classes", [1, 10, 1000])
def test_kl_rows_accurate_on_wide_and_extreme_logits(threads, classes):
    g = torch.Generator().manual_seed(2)
    q = torch.randn(37, classes, generator=g) * 4
    p = torch.randn(37, classes, generator=g) * 4
    q[0] += 1000.0                      # shift invariance
    p[1] = q[1]                         # KL exactly 0
    p[3] = -60 + torch.arange(classes)  # exp underflow in the target
    qd, pd = q.double(), p.double()
    if classes > 1:
        # a zero target probability contributes 0 log 0 = 0 (torch's kl_div convention); the
        # double reference gets the same from a finite but hopeless logit
        p[2, 0] = -float("inf")
        pd[2, 0] = -1e30
    expected = reference.kl_div_logits(qd, pd)
    up = torch.linspace(-2, 3, 37)
    exp_gq, exp_gp = reference.kl_div_logits_backward(qd, pd, up.double())
    for n in (1, 2):
        torch.set_num_threads(n)
        rows = cpp("kl_div_logits")(q, p)
        gq, gp = cpp("kl_div_logits_backward")(q, p, up)
        assert rows.dtype == torch.float32 and rows.shape == (37,)
        torch.testing.assert_close(rows.double(), expected, atol=2e-5, rtol=1e-4)
        assert rows[1] == 0
        torch.testing.assert_close(gq.double(), exp_gq, atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(gp.double(), exp_gp, atol=1e-6, rtol=1e-4)


def test_kl_rows_empty_batch_and_half():
    q = torch.empty(0, 10)
    assert cpp("kl_div_logits")(q, q).shape == (0,)
    gq, gp = cpp("kl_div_logits_backward")(q, q, torch.empty(0))
    assert gq.shape == (0, 10) and gp.shape == (0, 10)
    g = torch.Generator().manual_seed(3)
    qh, ph = (torch.randn(8, 100, generator=g).half() for _ in range(2))
    rows = cpp("kl_div_logits")(qh, ph)
    assert rows.dtype == torch.float16
    torch.testing.assert_close(rows.float(), reference.kl_div_logits(qh, ph).float(),
                               atol=2e-3, rtol=2e-3)


def test_wrappers_refuse_operands_that_are_not_flat_alike():
    x = torch.rand(2, 3, 4, 5)
    out = torch.empty_like(x)
    transposed = torch.rand(2, 3, 5, 4).transpose(2, 3)
    with pytest.raises(ValueError, match="grad"):
        cpp("pgd_step")(x, transposed, x, out, alpha=0.1, eps=0.1, sign=True)
    with pytest.raises(ValueError, match="not dense"):
        s = x[:, :, ::2]
        cpp("pgd_step")(s, s, s, s, alpha=0.1, eps=0.1, sign=True)
    with pytest.raises(TypeError, match="float64"):
        d = x.double()
        cpp("pgd_step")(d, d, d, torch.empty_like(d), alpha=0.1, eps=0.1, sign=True)
    with pytest.raises(TypeError, match="mask"):
        cpp("masked_scale")(x, torch.ones_like(x), out, scale=1.0)
    with pytest.raises(ValueError, match="kind"):
        cpp("random_start")(x, out, eps=0.1, kind="zero", scale=None, clamp=True, seed=0)
