"""fastadv.attacks.rays against closed-form ground truth: on the two-class linear model
(tests/helpers.py) RayS must find each point's exact L-inf distance, within its budget."""
import torch

from fastadv.attacks import rays

from tests.helpers import linear_problem


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
