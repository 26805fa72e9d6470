"""What is specific to the Triton kernels (fastadv.kernels), beyond tests/test_ops.py:
launch tiling (several programs and a ragged tail, rows padded past the batch, the chunked
path for wide rows), in-place aliasing, the half-precision rounding that makes the step and
its mask bitwise equal to the reference, the in-kernel Philox draw, and how the backend
registers itself. Runs on a GPU when there is one, else in Triton's CPU interpreter
(tests/conftest.py sets TRITON_INTERPRET=1 before anything imports the kernels).
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastadv.ops as ops
from fastadv.ops import _dispatch, reference

if "triton" not in ops.available_backends("cuda" if torch.cuda.is_available() else "cpu"):
    pytest.skip(f"triton backend not available here: {_dispatch._IMPORT_ERRORS.get('triton')}",
                allow_module_level=True)

from fastadv.kernels import _launch, kl_div, masked_scale, pgd_step  # noqa: E402
from fastadv.kernels import pgd_step_mask, random_start  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() and not _launch.INTERPRETED else "cpu"
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])
# More than one elementwise program, and a ragged last one.
BIG = (_launch.ELEMENTWISE_BLOCK * 2 + 345,)
STATS = ((1 << 16) + 345,)  # for the statistics of the random start, on any block size


def poisoned(like, dtype=None):
    out = torch.empty_like(like, dtype=dtype)
    return out.fill_(float("nan")) if out.is_floating_point() else out.fill_(True)


def step_inputs(shape, dtype, seed=0, eps=8 / 255):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    flat = x.view(-1)
    flat[::5], flat[1::7] = 0.0, 1.0  # pixels exactly on the box faces
    x_adv = (x + (torch.rand(shape, generator=g) * 2 - 1) * eps).clamp(0, 1)
    grad = torch.randn(shape, generator=g)
    grad.view(-1)[::3] = 0.0  # sign(0) = 0
    return [t.to(DEVICE, dtype) for t in (x_adv, grad, x)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("eps", [0.0, 8 / 255, 1.5])
def test_step_and_mask_are_bitwise_the_reference_over_many_programs(dtype, eps):
    x_adv, grad, x = step_inputs(BIG, dtype)
    for sign, alpha in ((True, 2 / 255), (False, 0.05)):
        want = reference.pgd_step(x_adv, grad, x, alpha=alpha, eps=eps, sign=sign)
        out = poisoned(x)
        pgd_step.pgd_step(x_adv, grad, x, out, alpha=alpha, eps=eps, sign=sign)
        assert torch.equal(out, want), (out.float() - want.float()).abs().max()

        want_x, want_mask = reference.pgd_step_with_mask(x_adv, grad, x, alpha=alpha,
                                                         eps=eps, sign=sign, tol=1e-7)
        out, mask = poisoned(x), poisoned(x, torch.bool)
        pgd_step_mask.pgd_step_with_mask(x_adv, grad, x, out, mask, alpha=alpha, eps=eps,
                                         sign=sign, tol=1e-7)
        assert torch.equal(out, want_x)
        # Half precision included: a coordinate on a face must not flip.
        assert torch.equal(mask, want_mask), (mask != want_mask).sum()
        if eps > 0:
            assert 0 < mask.sum() < mask.numel()


def test_step_in_place_when_out_is_x_adv():
    x_adv, grad, x = step_inputs(BIG, torch.float32, seed=1)
    want = reference.pgd_step(x_adv, grad, x, alpha=0.01, eps=0.03, sign=True)
    pgd_step.pgd_step(x_adv, grad, x, x_adv, alpha=0.01, eps=0.03, sign=True)
    assert torch.equal(x_adv, want)


def test_step_follows_the_formula_written_out():
    x = torch.tensor([0.0, 1.0, 0.5, 0.5, 0.5, 0.2, 0.9], device=DEVICE)
    x_adv = torch.tensor([0.0, 1.0, 0.5, 0.52, 0.48, 0.2, 0.9], device=DEVICE)
    grad = torch.tensor([-1.0, 2.0, 0.0, 3.0, -3.0, 1e-30, -1e-30], device=DEVICE)
    out = poisoned(x)
    pgd_step.pgd_step(x_adv, grad, x, out, alpha=0.05, eps=0.03, sign=True)
    # box clip at 0 and 1, sign(0) = 0, ball clip above and below, tiny gradients step fully
    expected = torch.tensor([0.0, 1.0, 0.5, 0.53, 0.47, 0.23, 0.87], device=DEVICE)
    torch.testing.assert_close(out, expected, atol=1e-7, rtol=0)
    out_raw = poisoned(x)
    pgd_step.pgd_step(x_adv, grad, x, out_raw, alpha=0.001, eps=0.03, sign=False)
    torch.testing.assert_close(out_raw, torch.tensor(
        [0.0, 1.0, 0.5, 0.523, 0.477, 0.2, 0.9], device=DEVICE), atol=1e-7, rtol=0)


def test_empty_tensors_launch_nothing():
    empty = torch.empty(0, 3, device=DEVICE)
    pgd_step.pgd_step(empty, empty, empty, empty, alpha=0.1, eps=0.1, sign=True)
    pgd_step_mask.pgd_step_with_mask(empty, empty, empty, empty, empty.bool(), alpha=0.1,
                                     eps=0.1, sign=False, tol=1e-7)
    masked_scale.masked_scale(empty, empty.bool(), empty, scale=2.0)
    random_start.random_start(empty, empty, eps=0.1, kind="uniform", scale=None, clamp=True,
                              generator=None)
    assert kl_div.kl_div_rows(empty, empty).shape == (0,)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf * 0
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_masked_scale_keeps_nan_where_the_reference_does(dtype):
    g = torch.randn(BIG, generator=torch.Generator().manual_seed(2)).to(DEVICE, dtype)
    g[7], g[8] = float("nan"), float("inf")
    mask = torch.rand(BIG, generator=torch.Generator().manual_seed(3)).to(DEVICE) > 0.4
    mask[7], mask[8] = False, False
    out = poisoned(g)
    masked_scale.masked_scale(g, mask, out, scale=0.37)
    want = reference.masked_scale(g, mask, 0.37)
    torch.testing.assert_close(out, want, equal_nan=True, atol=0, rtol=0)
    assert torch.isnan(out[7]) and torch.isnan(out[8])  # NaN * 0 and inf * 0, as in torch


def draw(kind, x, *, seed, eps=0.25, scale=0.1, clamp=True):
    out = poisoned(x)
    random_start.random_start(x, out, eps=eps, kind=kind, scale=scale, clamp=clamp,
                              generator=torch.Generator().manual_seed(seed))
    return out


def test_uniform_start_is_uniform_in_every_quarter_of_every_program():
    x = torch.full(STATS, 0.5, device=DEVICE)
    noise = (draw("uniform", x, seed=0) - 0.5).cpu()
    assert noise.abs().max() <= 0.25 and noise.abs().max() > 0.249
    quarter = _launch.ELEMENTWISE_BLOCK // 4
    programs = STATS[0] // _launch.ELEMENTWISE_BLOCK
    full = noise[: programs * _launch.ELEMENTWISE_BLOCK].view(-1, quarter)
    # Each program draws four quarters from one Philox call per lane; every quarter must
    # get its own U(-eps, eps) noise: mean 0, std eps / sqrt(3) (5-sigma bounds).
    sigma = 0.25 / 3 ** 0.5
    assert full.mean(1).abs().max() < 5 * sigma / quarter ** 0.5
    assert (full.std(1) - sigma).abs().max() < 5 * sigma * (0.8 / (4 * quarter)) ** 0.5
    corr = torch.corrcoef(full[:4])
    assert (corr - torch.eye(4)).abs().max() < 5 / quarter ** 0.5  # independent words
    assert noise[-345:].std() > 0.1  # the ragged tail is drawn too


def test_random_start_follows_the_generator_seed():
    x = torch.rand(3, 5, 7, device=DEVICE)
    a, b, c = draw("uniform", x, seed=1), draw("uniform", x, seed=1), draw("uniform", x, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(5)
    d = poisoned(x)
    random_start.random_start(x, d, eps=0.1, kind="uniform", scale=None, clamp=True,
                              generator=None)
    torch.manual_seed(5)
    e = poisoned(x)
    random_start.random_start(x, e, eps=0.1, kind="uniform", scale=None, clamp=True,
                              generator=None)
    assert torch.equal(d, e)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_normal_start_and_clamping(dtype):
    x = torch.full(STATS, 0.5, device=DEVICE, dtype=dtype)
    noise = (draw("normal", x, seed=3, scale=0.05).float() - 0.5).cpu()
    assert not torch.isnan(noise).any()
    n = noise.numel()
    assert abs(noise.mean()) < 5 * 0.05 / n ** 0.5
    assert abs(noise.std() - 0.05) < 5 * 0.05 / (2 * n) ** 0.5 + 2e-4  # + half-ulp rounding
    # Box-Muller tails: 0.27% of N(0, 1) lies beyond 3 sigma
    tail = (noise.abs() > 0.15).float().sum()
    assert abs(tail - 0.0027 * n) < 5 * (0.0027 * n) ** 0.5
    edges = torch.tensor([0.0, 1.0] * 500, device=DEVICE, dtype=dtype)
    clamped = draw("uniform", edges, seed=4, eps=0.5)
    free = draw("uniform", edges, seed=4, eps=0.5, clamp=False)
    assert clamped.min() >= 0 and clamped.max() <= 1
    assert free.min() < -0.1 and free.max() > 1.1
    torch.testing.assert_close(clamped, free.clamp(0, 1), atol=0, rtol=0)


def kl_inputs(rows, cols, dtype, seed=0, spread=3.0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(rows, cols, generator=g) * spread
    p = torch.randn(rows, cols, generator=g) * spread
    w = torch.randn(rows, generator=g)
    return [t.to(DEVICE, dtype) for t in (q, p, w)]


def check_kl(q, p, w, magnitude=1.0):
    """``magnitude``: the logits' scale, since log P - log Q carries absolute errors of
    float32 rounding at that scale."""
    tol = {torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[q.dtype]
    tol *= magnitude
    got, want = kl_div.kl_div_rows(q, p), reference.kl_div_rows(q, p)
    assert got.dtype == q.dtype and got.shape == (q.shape[0],)
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)
    got_q, got_p = kl_div.kl_div_rows_backward(q, p, w)
    want_q, want_p = reference.kl_div_rows_backward(q, p, w)
    torch.testing.assert_close(got_q.float(), want_q.float(), atol=tol, rtol=0)
    torch.testing.assert_close(got_p.float(), want_p.float(), atol=tol, rtol=0)
    return got


# Padding columns and rows past the batch must never produce a NaN, even discarded
# (the interpreter reports it as numpy's RuntimeWarning).
NO_NAN_ON_THE_WAY = pytest.mark.filterwarnings("error::RuntimeWarning")


@NO_NAN_ON_THE_WAY
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows,cols", [(1, 1), (5, 10), (37, 100), (3, 1000)])
def test_kl_rows_one_tile(dtype, rows, cols):
    per_program, _, single, _ = _launch.row_tiling(rows, cols)
    assert single
    check_kl(*kl_inputs(rows, cols, dtype))


@NO_NAN_ON_THE_WAY
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_kl_rows_chunked_path_for_wide_rows(dtype, monkeypatch):
    # The chunked path serves rows wider than MAX_BLOCK_C; shrink the limit so a small
    # tensor walks three chunks, the last one ragged.
    monkeypatch.setattr(_launch, "MAX_BLOCK_C", 32)
    per_program, block_c, single, _ = _launch.row_tiling(6, 75)
    assert not single and block_c == 32
    q, p, w = kl_inputs(6, 75, dtype, seed=1)
    q[2, 70] = 40.0  # the row maximum sits in the ragged last chunk
    p[3, 5] = 40.0   # and here in the first: the running max must rescale later chunks
    check_kl(q, p, w)


@NO_NAN_ON_THE_WAY
def test_kl_rows_handles_saturated_and_equal_rows():
    q, p, w = kl_inputs(9, 33, torch.float32, seed=2, spread=300.0)
    p[4] = q[4]  # identical rows: KL is exactly computed as 0 up to rounding
    got = check_kl(q, p, w, magnitude=1000.0)
    assert torch.isfinite(got).all() and abs(float(got[4])) < 1e-5


def test_backend_registration_here():
    table = _dispatch._TABLE
    for op in _dispatch.OPS:
        fn, dtypes, devices = table[op]["triton"]
        assert DEVICE in devices
        assert set(dtypes) == set(DTYPES)
    assert table["kl_div_rows"]["triton"][0] is kl_div.kl_div_rows


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU makes the backend importable")
def test_backend_is_absent_without_gpu_or_interpreter():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    code = ("import fastadv.ops as ops\n"
            "from fastadv.ops import _dispatch\n"
            "assert 'triton' not in ops.available_backends('cpu')\n"
            "print(_dispatch._IMPORT_ERRORS['triton'])\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ImportError" in done.stdout and "TRITON_INTERPRET=1" in done.stdout
