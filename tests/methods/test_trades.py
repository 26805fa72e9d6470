"""TRADES and Fast TRADES (1 and 2 steps) against the float64 transcription of METHODS.md."""
import copy

import pytest
import torch
import torch.nn.functional as F

from fastadv import methods
from tests.methods.helpers import Noise, assert_same, input_grad, kl_sum, make, run_method


def ref_trades(model, x, y, eps, alpha, steps, beta, start):
    model.eval()
    l_nat = model(x).detach()
    x_adv = start
    for _ in range(steps):
        g = input_grad(lambda xa: kl_sum(l_nat, model(xa)), x_adv)
        x_adv = torch.minimum(torch.maximum(x_adv + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    model.train()
    logits = model(x)
    return F.cross_entropy(logits, y) + beta * kl_sum(logits, model(x_adv)) / x.shape[0]


@pytest.mark.parametrize("name,steps,alpha,kind", [("trades", 3, 0.02, "normal"),
                                                   ("fast_trades", 1, None, "uniform"),
                                                   ("fast_trades", 2, None, "uniform")])
def test_trades_family_matches_transcription(fake_start, name, steps, alpha, kind):
    model, x, y = make(2)
    ref = copy.deepcopy(model)
    kwargs = {"steps": steps} if alpha is None else {"steps": steps, "alpha": alpha}
    method = methods.get(name, eps=0.1, beta=4.0, **kwargs)
    out, grads = run_method(method, model, x, y)
    noise = Noise()
    start = x + (0.001 * noise.normal(x) if kind == "normal" else 0.1 * noise.uniform(x))
    expected_alpha = alpha if alpha is not None else (0.1 if steps == 1 else 0.0625)
    ref_loss = ref_trades(ref, x, y, 0.1, expected_alpha, steps, 4.0, start)
    assert_same(out.loss, grads, ref_loss, list(ref.parameters()))
    assert fake_start[0]["kind"] == kind and fake_start[0]["clamp"] is False
    assert model.training  # BN mode restored after the eval-mode attack
