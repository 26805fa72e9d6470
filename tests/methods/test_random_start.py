"""The real random start (no fake): the reference op's draws feed the method, and the rest
of the step still matches the transcription; draws are random and follow torch's seed."""
import copy

import pytest
import torch

from fastadv import methods
from tests.methods.helpers import (C, H, K, W, assert_same, make, ref_fast_at, ref_pgd_at,
                                   run_method)


@pytest.mark.parametrize("name", ["fast_at", "pgd_at"])
def test_real_uniform_random_start(name):
    """The real op: the first attack forward sees x + U(-eps, eps) clipped to the box, and
    the rest of the step matches the transcription started from that point."""
    model, x, y = make(8)
    x = torch.rand(64, C, H, W, dtype=torch.float64)
    y = torch.randint(0, K, (64,))
    ref = copy.deepcopy(model)
    seen = []
    handle = model.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].detach()))
    kwargs = {"steps": 2, "alpha": 0.04} if name == "pgd_at" else {}
    out, grads = run_method(methods.get(name, eps=0.1, **kwargs), model, x, y)
    handle.remove()
    d0 = seen[0] - x
    assert d0.abs().max() <= 0.1 + 1e-12 and seen[0].min() >= 0 and seen[0].max() <= 1
    inside = (x > 0.1) & (x < 0.9)
    assert d0[inside].max() > 0.08 and d0[inside].min() < -0.08  # spread over the ball
    assert abs(d0[inside].mean().item()) < 0.01

    class Replay:  # hands the transcription the start the op drew (already in the box)
        def uniform(self, like):
            return d0 / 0.1

    if name == "fast_at":
        ref_loss = ref_fast_at(ref, x, y, 0.1, 0.125, Replay())
    else:
        ref_loss = ref_pgd_at(ref, x, y, 0.1, 0.04, 2, Replay())
    assert_same(out.loss, grads, ref_loss, list(ref.parameters()))


def test_random_start_is_random_and_seeded():
    model, x, y = make(9)
    model, x = model.float(), x.float()  # the default (fused) backend path
    method = methods.get("fast_at", eps=0.2)
    losses = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        losses.append(method.loss(model, x, y).loss.item())
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]
