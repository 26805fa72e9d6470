"""fastadv.attacks.pgd and fgsm against closed-form ground truth: on the two-class linear model
(tests/helpers.py) they must break every point whose exact L-inf distance is < eps and none
whose distance is > eps."""
import pytest
import torch

from fastadv.attacks import default_alpha, fgsm, pgd

from tests.helpers import linear_problem, net_batch, small_net


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


def test_default_alpha_is_a_quarter_of_eps_unless_given():
    assert default_alpha(None, 0.08) == pytest.approx(0.02)
    assert default_alpha(0.01, 0.08) == 0.01
