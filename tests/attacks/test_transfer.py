"""fastadv.attacks.transfer: PGD crafted on a surrogate; with the target itself as the
surrogate it must match the closed-form robust accuracy of the linear model."""
import pytest
import torch

from fastadv.attacks import transfer

from tests.helpers import TwoClassLinear, linear_problem


def test_transfer_from_the_model_itself_matches_closed_form():
    eps = 0.05
    model, x, y, dist = linear_problem(eps)
    surrogate = TwoClassLinear(model.w.detach(), float(model.b.detach())).train()
    _, success = transfer(model, surrogate, x, y, eps=eps, steps=8)
    assert torch.equal(success, dist <= eps)
    assert surrogate.training  # mode restored
    with pytest.raises(ValueError, match="surrogate"):
        transfer(model, None, x, y, eps=eps)
