"""Fast-BAT: its surrogate against the explicit two-pass procedure of METHODS.md (ordinary
gradient plus a double backward through g_z), the linearization options, and suggest_alpha."""
import copy

import pytest
import torch
import torch.nn.functional as F

from fastadv import methods
from tests.methods.helpers import B, Noise, P, input_grad, make, run_method


def ref_fast_bat_parts(model, x, y, eps, a, lam, noise):
    """(CE_sum(f(x+delta*)), g_z with graph, v) of METHODS.md's Fast-BAT steps 1-6."""
    model.train()
    ce_sum = lambda d: F.cross_entropy(model(x + d), y, reduction="sum")  # noqa: E731
    z0 = P(eps * noise.uniform(x), x, eps)
    z = P(z0 + a * input_grad(ce_sum, z0), x, eps)
    z_req = z.detach().requires_grad_(True)
    (g_z,) = torch.autograd.grad(ce_sum(z_req), z_req, create_graph=True)
    delta = P(z + a * g_z.detach(), x, eps)
    lower = torch.maximum(-x, torch.full_like(x, -eps))
    upper = torch.minimum(1 - x, torch.full_like(x, eps))
    mask = (delta > lower + 1e-7) & (delta < upper - 1e-7)
    delta = delta.requires_grad_(True)
    ce_star = ce_sum(delta)
    (g_star,) = torch.autograd.grad(ce_star, delta, retain_graph=True)
    v = (mask * g_star / lam).detach()
    return ce_star, g_z, v, mask


def test_fast_bat_matches_two_pass_procedure(fake_start):
    model, x, y = make(5)
    ref = copy.deepcopy(model)
    eps, a, lam = 0.1, 0.3, 4.0
    out, grads = run_method(methods.get("fast_bat", eps=eps, alpha=a, lam=lam), model, x, y)
    ce_star, g_z, v, mask = ref_fast_bat_parts(ref, x, y, eps, a, lam, Noise())
    assert 0 < mask.double().mean() < 1, "pick a so that the mask is mixed"
    params = list(ref.parameters())
    ordinary = torch.autograd.grad(ce_star / B, params, retain_graph=True)
    implicit = torch.autograd.grad((g_z * v).sum() / B, params, allow_unused=True)
    two_pass = [o + (0 if i is None else i) for o, i in zip(ordinary, implicit)]
    assert any(i is not None and i.abs().max() > 1e-6 for i in implicit), "implicit term vanished"
    value = ce_star.detach() / B + (g_z * v).sum().detach() / B
    torch.testing.assert_close(out.loss.detach(), value, rtol=1e-9, atol=1e-12)
    for g, r in zip(grads, two_pass):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-11)
    torch.testing.assert_close(out.metrics["mask_frac"], mask.float().mean())


def test_fast_bat_surrogate_equals_two_pass_in_transcription(fake_start):
    model, x, y = make(6)
    ce_star, g_z, v, _ = ref_fast_bat_parts(model, x, y, 0.1, 0.3, 10.0, Noise())
    params = list(model.parameters())
    surrogate = ce_star / B + (g_z * v.detach()).sum() / B
    via_surrogate = torch.autograd.grad(surrogate, params, retain_graph=True)
    ordinary = torch.autograd.grad(ce_star / B, params, retain_graph=True)
    explicit = torch.autograd.grad(g_z, params, grad_outputs=v / B, allow_unused=True)
    for s, o, e in zip(via_surrogate, ordinary, explicit):
        torch.testing.assert_close(s, o + (0 if e is None else e))


@pytest.mark.parametrize("linearization", ["uniform", "pgd_sign", "corner"])
def test_fast_bat_linearization_choices_run(linearization):
    model, x, y = make(7)
    out = methods.get("fast_bat", eps=0.1, alpha=0.3, linearization=linearization).loss(model, x, y)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_suggest_alpha_scales_with_eps():
    model, x, y = make(12)
    a1 = methods.suggest_alpha(model, x, y, 0.1)
    a2 = methods.suggest_alpha(model, x, y, 0.2)
    assert a1 > 0 and a2 == pytest.approx(2 * a1)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"eps": 0.0}, ValueError, "eps must be > 0"),
    ({"eps": 8}, ValueError, "eps must be <= 1"),
    ({"eps": "0.1"}, TypeError, "eps must be a real number"),
    ({"eps": 0.1, "target_fraction": -1.0}, ValueError, "target_fraction must be > 0"),
])
def test_suggest_alpha_checks_its_arguments(kwargs, error, match):
    model, x, y = make(12)
    with pytest.raises(error, match=match):
        methods.suggest_alpha(model, x, y, **kwargs)
