"""Fixtures of the method tests: a fake fastadv.ops.random_start fed by seeded noise, and a
spy on fastadv.ops.pgd_step that records the step size and projection radius of each call."""
import pytest

from fastadv import ops
from tests.methods.helpers import Noise


@pytest.fixture
def fake_start(monkeypatch):
    """Replace ops.random_start with draws from Noise() (seed 123, as the transcriptions use);
    returns the list of the calls' arguments."""
    noise = Noise()
    calls = []

    def random_start(x, eps, *, kind="uniform", scale=None, clamp=True, generator=None,
                     backend=None):
        calls.append(dict(kind=kind, clamp=clamp, scale=scale, eps=eps))
        if kind == "zero":
            out = x.clone()
        elif kind == "uniform":
            out = x + eps * noise.uniform(x)
        else:
            out = x + (0.001 if scale is None else scale) * noise.normal(x)
        return out.clamp(0, 1) if clamp else out

    monkeypatch.setattr(ops, "random_start", random_start)
    return calls


@pytest.fixture
def step_spy(monkeypatch):
    """Wrap ops.pgd_step (the real op still runs); returns the list of (alpha, eps) it got."""
    real = ops.pgd_step
    calls = []

    def pgd_step(x_adv, grad, x, *, alpha, eps, **kwargs):
        calls.append((alpha, eps))
        return real(x_adv, grad, x, alpha=alpha, eps=eps, **kwargs)

    monkeypatch.setattr(ops, "pgd_step", pgd_step)
    return calls
