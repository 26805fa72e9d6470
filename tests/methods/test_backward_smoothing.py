"""Backward Smoothing against the float64 transcription of METHODS.md (the logit noise psi
is made identical by seeding torch's global RNG before both)."""
import copy

import torch
import torch.nn.functional as F

from fastadv import methods
from tests.methods.helpers import P, assert_same, input_grad, kl_sum, make, run_method


def ref_backward_smoothing(model, x, y, eps, alpha, beta, gamma, seed):
    model.eval()
    zero = torch.zeros_like(x)
    l_nat = model(x).detach()
    torch.manual_seed(seed)
    psi = gamma * (torch.rand(l_nat.shape, dtype=l_nat.dtype) * 2 - 1)
    g1 = input_grad(lambda d: kl_sum(l_nat + psi, model(x + d)), zero)
    d1 = P(-alpha * g1.sign(), x, eps)
    g2 = input_grad(lambda d: kl_sum(l_nat, model(x + d)), d1)
    d2 = P(d1 + alpha * g2.sign(), x, eps)
    model.train()
    logits = model(x)
    return F.cross_entropy(logits, y) + beta * kl_sum(logits, model(x + d2)) / x.shape[0]


def test_backward_smoothing_matches_transcription():
    model, x, y = make(3)
    ref = copy.deepcopy(model)
    torch.manual_seed(7)
    out, grads = run_method(methods.get("backward_smoothing", eps=0.1, gamma=2.0), model, x, y)
    ref_loss = ref_backward_smoothing(ref, x, y, 0.1, 0.1, 10.0, 2.0, seed=7)
    assert_same(out.loss, grads, ref_loss, list(ref.parameters()))
    assert model.training
