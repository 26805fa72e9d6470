"""Attacks against closed-form ground truth.

A two-class linear model with logits [0, w.x + b] has, for a point away from the pixel box's
edges, the minimal L-inf adversarial distance |w.x + b| / ||w||_1 (Hoelder's inequality,
attained at the corner delta = -sign(w.x + b) * dist * sign(w)). PGD and FGSM must find every
point with distance < eps and none with distance > eps; RayS must find the distance itself.
"""
import math
import sys

import pytest
import torch

from fastadv import attacks
from fastadv.attacks import fgsm, gradient_alignment, parse_spec, parse_specs, pgd, rays, transfer

from tests.helpers import TwoClassLinear, linear_problem, net_batch, small_net


def test_pgd_matches_closed_form_robust_accuracy():
    eps = 0.05
    model, x, y, dist = linear_problem(eps)
    expected = dist <= eps
    assert 0 < int(expected.sum()) < len(y)  # the test is informative both ways
    x_adv, success = pgd(model, x, y, eps=eps, steps=10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(success, expected)
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        assert (model(x_adv[success]).argmax(1) != y[success]).all()


def test_fgsm_matches_closed_form_on_linear_model():
    eps = 0.05
    model, x, y, dist = linear_problem(eps, seed=3)
    _, success = fgsm(model, x, y, eps=eps)
    assert torch.equal(success, dist <= eps)


def test_more_restarts_never_raise_robust_accuracy():
    model = small_net()
    x, y = net_batch(model, n=48)
    broken = []
    for restarts in (1, 2, 4):
        _, success = pgd(model, x, y, eps=0.03, steps=3, restarts=restarts,
                         generator=torch.Generator().manual_seed(5))
        broken.append(success)
    assert int(broken[0].sum()) < len(y)  # not trivially all broken
    for fewer, more in zip(broken, broken[1:]):
        assert bool((fewer <= more).all())  # every point broken stays broken


def test_pgd_dlr_loss_and_its_class_requirement():
    model = small_net()
    x, y = net_batch(model)
    x_adv, success = pgd(model, x, y, eps=0.1, steps=5, loss="dlr")
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert success.any()
    linear, lx, ly, _ = linear_problem()
    with pytest.raises(ValueError, match="DLR"):
        pgd(linear, lx, ly, eps=0.05, steps=2, loss="dlr")


def test_pgd_eps_zero_is_clean_prediction():
    model, x, y, _ = linear_problem()
    y = y.clone()
    y[0] = 1 - y[0]
    _, success = pgd(model, x, y, eps=0.0, steps=10)
    assert success.tolist() == [True] + [False] * (len(y) - 1)


def test_rays_distance_within_two_percent_of_exact():
    model, x, y, dist = linear_problem(n=24)
    result = rays(model, x, y, queries=400)
    relative = (result.distance - dist).abs() / dist
    assert float(relative.max()) < 0.02
    assert bool((result.queries <= 400 + 64).all())
    with torch.no_grad():
        assert (model(result.x_adv).argmax(1) != y).all()
    reach = (result.x_adv - x).abs().flatten(1).amax(1)
    assert torch.allclose(reach, result.distance)


def test_rays_misclassified_points_have_distance_zero_and_early_stop():
    model, x, y, dist = linear_problem(n=16)
    y = y.clone()
    y[:2] = 1 - y[:2]
    result = rays(model, x, y, queries=300, eps=0.05, early_stop=True)
    assert result.distance[:2].tolist() == [0.0, 0.0]
    assert torch.equal(result.success(0.05)[2:], dist[2:] <= 0.05)


def test_transfer_from_the_model_itself_matches_closed_form():
    eps = 0.05
    model, x, y, dist = linear_problem(eps)
    surrogate = TwoClassLinear(model.w.detach(), float(model.b.detach())).train()
    _, success = transfer(model, surrogate, x, y, eps=eps, steps=8)
    assert torch.equal(success, dist <= eps)
    assert surrogate.training  # mode restored
    with pytest.raises(ValueError, match="surrogate"):
        transfer(model, None, x, y, eps=eps)


def test_gradient_alignment_linear_is_one_and_restores_mode():
    model, x, y, _ = linear_problem()
    assert gradient_alignment(model, x, y, 0.05) == pytest.approx(1.0, abs=1e-6)
    net = small_net().train()
    value = gradient_alignment(net, *net_batch(net), 0.3)
    assert -1.0 <= value <= 1.0 and value < 0.9999
    assert net.training


def test_autoattack_standard_through_the_package():
    pytest.importorskip("pyautoattack")  # the eval extra; CI installs it
    model = small_net(seed=2)
    x, y = net_batch(model, n=6, seed=4)
    # a radius at which APGD-CE breaks every point keeps "standard" fast (FAB-T and Square
    # then have nothing left to attack)
    x_adv, success = attacks.autoattack(model, x, y, eps=0.3, version="standard", seed=0)
    assert (x_adv - x).abs().max() <= 0.3 + 1e-6
    with torch.no_grad():
        assert torch.equal(model(x_adv).argmax(1) != y, success)
    assert bool(success.all())


def test_autoattack_subset_is_at_least_as_strong_as_pgd():
    pytest.importorskip("pyautoattack")
    model = small_net(seed=2)
    x, y = net_batch(model, n=10, seed=4)
    x_adv, success = attacks.autoattack(model, x, y, eps=0.05, attacks=["apgd-ce"])
    assert (x_adv - x).abs().max() <= 0.05 + 1e-6
    with torch.no_grad():
        assert torch.equal(model(x_adv).argmax(1) != y, success)
    _, pgd_success = pgd(model, x, y, eps=0.05, steps=20)
    assert 0 < int(success.sum()) < len(y)
    assert int(success.sum()) >= int(pgd_success.sum())
    with pytest.raises(ValueError, match="attacks"):
        attacks.autoattack(model, x, y, eps=0.05, attacks=["apgd-xx"])


def test_autoattack_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyautoattack", None)
    model = small_net()
    x, y = net_batch(model, n=4)
    with pytest.raises(ImportError, match=r"fastadv\[eval\]"):
        attacks.autoattack(model, x, y, eps=0.03)


@pytest.mark.parametrize("text, kind, steps, restarts, queries", [
    ("pgd-50-10", "pgd", 50, 10, None),
    ("PGD-20", "pgd", 20, 1, None),
    ("rays", "rays", None, None, 40000),
    ("rays-500", "rays", None, None, 500),
    ("transfer", "transfer", 20, 1, None),
    ("transfer-10-2", "transfer", 10, 2, None),
    ("fgsm", "fgsm", None, None, None),
    ("autoattack", "autoattack", None, None, None),
])
def test_parse_spec(text, kind, steps, restarts, queries):
    spec = parse_spec(text)
    assert (spec.kind, spec.steps, spec.restarts, spec.queries) == (kind, steps, restarts, queries)


@pytest.mark.parametrize("bad", ["pgd", "pgd-0", "pgd-10-0", "rays-0", "cw", "pgd-x", ""])
def test_parse_spec_rejects(bad):
    with pytest.raises(ValueError, match="spec"):
        parse_spec(bad)


def test_parse_specs_list_string_and_duplicates():
    assert [s.text for s in parse_specs("clean, pgd-20")] == ["clean", "pgd-20"]
    with pytest.raises(ValueError, match="twice"):
        parse_specs(["pgd-20", "pgd-20"])
    with pytest.raises(ValueError, match="empty"):
        parse_specs([])


def test_attack_argument_errors():
    model, x, y, _ = linear_problem()
    with pytest.raises(ValueError, match="eps"):
        pgd(model, x, y, eps=-0.1)
    with pytest.raises(ValueError, match="eps"):
        rays(model, x, y, eps=math.nan, early_stop=True)
    with pytest.raises(ValueError, match="mismatched"):
        pgd(model, x, y[:-1], eps=0.1)
    with pytest.raises(TypeError, match="floating"):
        pgd(model, (x * 255).to(torch.uint8), y, eps=0.1)
    with pytest.raises(ValueError, match="restarts"):
        pgd(model, x, y, eps=0.1, restarts=0)
    with pytest.raises(ValueError, match="loss"):
        pgd(model, x, y, eps=0.1, loss="hinge")
