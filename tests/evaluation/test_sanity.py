"""evaluate()'s sanity warnings (fastadv.evaluation.sanity): probability outputs, a randomized
model, and gradient masking (a black-box attack beating white-box PGD); an honest model
raises none."""
import warnings

import pytest
import torch
from torch import nn

from fastadv import evaluate

from tests.helpers import TwoClassLinear, linear_problem, net_data, small_net


def test_transfer_and_gradient_masking_warning():
    eps = 0.05
    model, x, y, dist = linear_problem(eps, n=40)
    masked = TwoClassLinear(model.w.detach(), float(model.b.detach()), masked_gradient=True)
    with pytest.warns(RuntimeWarning, match="gradient masking"):
        record = evaluate(masked.eval(), (x, y), attacks=["pgd-5", "transfer-8"], eps=eps,
                          surrogate=model)
    exact = float((dist > eps).float().mean())
    assert record["attacks"]["transfer-8"]["robust_accuracy"] == pytest.approx(exact)
    assert record["attacks"]["pgd-5"]["robust_accuracy"] > exact
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an honest model raises no warning
        evaluate(model, (x, y), attacks=["pgd-5", "transfer-8"], eps=eps, surrogate=model)


class Softmaxed(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = small_net()

    def forward(self, x):
        return self.body(x).softmax(dim=1)


class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = small_net()

    def forward(self, x):
        return self.body(x) + 0.1 * torch.randn(x.shape[0], 10)


@pytest.mark.parametrize("model, match", [(Softmaxed, "probabilities"), (Noisy, "randomized")])
def test_sanity_warnings(model, match):
    model = model()
    x, y = net_data(model.body, n=8)
    with pytest.warns(RuntimeWarning, match=match):
        evaluate(model, (x, y), attacks=["clean"])
