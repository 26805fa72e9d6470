"""fastadv.attacks.gradient_alignment: exactly 1 on a linear model (its input gradient is
constant), below 1 on a non-linear one; the model's mode is restored."""
import pytest

from fastadv.attacks import gradient_alignment

from tests.helpers import linear_problem, net_batch, small_net


def test_gradient_alignment_linear_is_one_and_restores_mode():
    model, x, y, _ = linear_problem()
    assert gradient_alignment(model, x, y, 0.05) == pytest.approx(1.0, abs=1e-6)
    net = small_net().train()
    value = gradient_alignment(net, *net_batch(net), 0.3)
    assert -1.0 <= value <= 1.0 and value < 0.9999
    assert net.training
