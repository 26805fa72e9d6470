"""GradAlign against the float64 transcription of METHODS.md."""
import copy

import torch
import torch.nn.functional as F

from fastadv import methods
from tests.methods.helpers import Noise, P, assert_same, input_grad, make, run_method


def ref_grad_align(model, x, y, eps, reg, noise):
    model.train()
    g1 = input_grad(lambda d: F.cross_entropy(model(x + d), y), torch.zeros_like(x))
    d = P(eps * g1.sign(), x, eps)
    eta = eps * noise.uniform(x)
    g2 = input_grad(lambda e: F.cross_entropy(model(x + e), y), eta, create_graph=True)
    a, b = g1.flatten(1), g2.flatten(1)
    keep = (a.norm(dim=1) > 0) & (b.norm(dim=1) > 0)
    cos = F.cosine_similarity(a[keep], b[keep], dim=1)
    return F.cross_entropy(model(x + d), y) + reg * (1 - cos.mean())


def test_grad_align_matches_transcription(fake_start):
    model, x, y = make(4)
    ref = copy.deepcopy(model)
    out, grads = run_method(methods.get("grad_align", eps=0.1, reg=0.7), model, x, y)
    ref_loss = ref_grad_align(ref, x, y, 0.1, 0.7, Noise())  # the zero start draws nothing
    assert_same(out.loss, grads, ref_loss, list(ref.parameters()))
    assert [c["kind"] for c in fake_start] == ["zero", "uniform"]
    assert fake_start[1]["clamp"] is False
