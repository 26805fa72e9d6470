"""fastadv.ops.random_start: every backend's draw is reproducible under torch.manual_seed and
explicit generators, has the right distribution, respects eps and the box; the Triton
kernel's in-kernel Philox draw (every quarter of every program, the seed, Box-Muller tails);
and the argument errors. The cpp backend's RNG has its own tests in test_backend_cpp.py."""
import pytest
import torch

import fastadv.ops as ops
from tests.ops.helpers import (STEP_CASES, TRITON_DEVICE, TRITON_DTYPES, ELEMENTWISE_BLOCK,
                               backend_fn, case_id, kernel_module, needs_triton, poisoned)

STATS = ((1 << 16) + 345,)  # for the statistics of the Triton draw, on any block size


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
    out = poisoned(x)
    backend_fn("random_start", backend, device, dtype)(x, out, eps=0.1, kind="uniform",
                                                       scale=0.0, clamp=True, seed=0)
    assert not torch.isnan(out).any()


def test_random_start_runs_on_inference_tensors():
    with torch.inference_mode():
        x = torch.rand(2, 3, 4, 4)
        out = ops.random_start(x, 0.1)
    assert (out - x).abs().max() <= 0.1 + 1e-6


def test_random_start_errors():
    x = torch.rand(2, 3)
    with pytest.raises(ValueError, match="kind must be one of"):
        ops.random_start(x, 0.1, kind="gaussian")
    with pytest.raises(ValueError, match="eps must be >= 0.0"):
        ops.random_start(x, -0.1)
    with pytest.raises(ValueError, match="scale applies only to kind='normal'"):
        ops.random_start(x, 0.1, scale=0.5)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        ops.random_start(x, 0.1, generator=3)
    with pytest.raises(TypeError, match="x must be a floating tensor"):
        ops.random_start(torch.ones(2, dtype=torch.int64), 0.1)
    # kind="zero" draws nothing, but its backend argument is still checked
    with pytest.raises(ValueError, match="unknown backend 'bogus'"):
        ops.random_start(x, 0.1, kind="zero", backend="bogus")
    with pytest.raises(TypeError, match="backend must be a str"):
        ops.random_start(x, 0.1, kind="zero", backend=1)


# --- the Triton kernel (kernels/random_start.py) --------------------------------------------

def draw(kind, x, *, seed, eps=0.25, scale=0.1, clamp=True):
    out = poisoned(x)
    kernel_module("random_start").random_start(x, out, eps=eps, kind=kind, scale=scale,
                                               clamp=clamp, seed=seed)
    return out


@needs_triton
def test_triton_uniform_start_is_uniform_in_every_quarter_of_every_program():
    x = torch.full(STATS, 0.5, device=TRITON_DEVICE)
    noise = (draw("uniform", x, seed=0) - 0.5).cpu()
    assert noise.abs().max() <= 0.25 and noise.abs().max() > 0.249
    quarter = ELEMENTWISE_BLOCK // 4
    programs = STATS[0] // ELEMENTWISE_BLOCK
    full = noise[: programs * ELEMENTWISE_BLOCK].view(-1, quarter)
    # Each program draws four quarters from one Philox call per lane; every quarter must
    # get its own U(-eps, eps) noise: mean 0, std eps / sqrt(3) (5-sigma bounds).
    sigma = 0.25 / 3 ** 0.5
    assert full.mean(1).abs().max() < 5 * sigma / quarter ** 0.5
    assert (full.std(1) - sigma).abs().max() < 5 * sigma * (0.8 / (4 * quarter)) ** 0.5
    corr = torch.corrcoef(full[:4])
    assert (corr - torch.eye(4)).abs().max() < 5 / quarter ** 0.5  # independent words
    assert noise[-345:].std() > 0.1  # the ragged tail is drawn too


@needs_triton
def test_triton_random_start_follows_the_seed():
    x = torch.rand(3, 5, 7, device=TRITON_DEVICE)
    a, b, c = draw("uniform", x, seed=1), draw("uniform", x, seed=1), draw("uniform", x, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # the seed's high bits key the stream too (seeds are drawn from [0, 2**62))
    assert not torch.equal(a, draw("uniform", x, seed=1 + (1 << 40)))


@needs_triton
@pytest.mark.parametrize("dtype", TRITON_DTYPES, ids=str)
def test_triton_normal_start_and_clamping(dtype):
    x = torch.full(STATS, 0.5, device=TRITON_DEVICE, dtype=dtype)
    noise = (draw("normal", x, seed=3, scale=0.05).float() - 0.5).cpu()
    assert not torch.isnan(noise).any()
    n = noise.numel()
    assert abs(noise.mean()) < 5 * 0.05 / n ** 0.5
    assert abs(noise.std() - 0.05) < 5 * 0.05 / (2 * n) ** 0.5 + 2e-4  # + half-ulp rounding
    # Box-Muller tails: 0.27% of N(0, 1) lies beyond 3 sigma
    tail = (noise.abs() > 0.15).float().sum()
    assert abs(tail - 0.0027 * n) < 5 * (0.0027 * n) ** 0.5
    edges = torch.tensor([0.0, 1.0] * 500, device=TRITON_DEVICE, dtype=dtype)
    clamped = draw("uniform", edges, seed=4, eps=0.5)
    free = draw("uniform", edges, seed=4, eps=0.5, clamp=False)
    assert clamped.min() >= 0 and clamped.max() <= 1
    assert free.min() < -0.1 and free.max() > 1.1
    torch.testing.assert_close(clamped, free.clamp(0, 1), atol=0, rtol=0)
