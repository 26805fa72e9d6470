"""N-FGSM against the float64 transcription of METHODS.md ("N-FGSM"), with the noise fixed by
the fake random start; the size of its perturbation with and without clip; the ops it calls.
Its pass counts are in test_pass_counts.py with every other method's."""
import copy

import pytest
import torch
import torch.nn.functional as F

from fastadv import methods
from tests.methods.helpers import C, H, K, W, Noise, assert_same, box, input_grad, make, run_method


def ref_n_fgsm(model, x, y, eps, alpha, k, clip, noise, bn_mode="train"):
    """(loss, delta) of METHODS.md's N-FGSM, clamping as the official code does: the noise
    to the box, then the step to the box, then (only with clip c) to [-c eps, c eps]."""
    model.train(bn_mode == "train")
    eta = box(k * eps * noise.uniform(x), x)
    g = input_grad(lambda e: F.cross_entropy(model(x + e), y), eta)
    delta = box(eta + alpha * g.sign(), x)
    if clip is not None:
        delta = delta.clamp(-clip * eps, clip * eps)
    model.train()
    return F.cross_entropy(model(x + delta), y), delta


CASES = [  # overrides of eps=0.1; the expected alpha and projection radius
    ({}, 0.1, 0.3),
    ({"alpha": 0.15}, 0.15, 0.35),
    ({"noise": 1.5, "clip": 1.0}, 0.1, 0.1),
    ({"clip": 0.5, "bn_mode": "eval"}, 0.1, 0.05),
    ({"noise": 0.0}, 0.1, 0.1),
]


@pytest.mark.parametrize("overrides,alpha,radius", CASES)
def test_n_fgsm_matches_transcription(fake_start, step_spy, overrides, alpha, radius):
    model, x, y = make(11)
    ref = copy.deepcopy(model)
    method = methods.get("n_fgsm", eps=0.1, **overrides)
    seen = []
    model.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].detach()))
    out, grads = run_method(method, model, x, y)
    k, clip = overrides.get("noise", 2.0), overrides.get("clip")
    ref_loss, delta = ref_n_fgsm(ref, x, y, 0.1, alpha, k, clip, Noise(),
                                 overrides.get("bn_mode", "train"))
    assert_same(out.loss, grads, ref_loss, list(ref.parameters()))
    torch.testing.assert_close(seen[1] - x, delta, rtol=0, atol=1e-15)
    assert fake_start == [dict(kind="uniform", clamp=True, scale=None, eps=pytest.approx(k * 0.1))]
    assert step_spy == [(pytest.approx(alpha), pytest.approx(radius))]
    assert model.training  # BN mode restored after the attack


def perturbation(method, noise_seed=0, n=256, dtype=torch.float32):
    """(x, x + delta as the loss forward sees it) on the default (fused) backend path; the
    batch is always the same, the noise follows torch.manual_seed(noise_seed)."""
    model, _, _ = make(12)
    model = model.to(dtype)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, C, H, W, dtype=dtype, generator=gen)
    y = torch.randint(0, K, (n,), generator=gen)
    seen = []
    model.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0].detach()))
    torch.manual_seed(noise_seed)
    method.loss(model, x, y)
    assert len(seen) == 2
    return x, seen[1]


def test_without_clip_the_perturbation_leaves_the_eps_ball():
    eps = 0.1
    x, x_adv = perturbation(methods.get("n_fgsm", eps=eps))
    d = x_adv - x
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert d.abs().max() > 2.5 * eps  # near (k + 1) * eps = 3 eps
    assert d.abs().max() <= 3 * eps + 1e-6
    # the noise is U(-2 eps, 2 eps) and the step eps: about half the coordinates leave the ball
    assert (d.abs() > eps + 1e-6).float().mean() > 0.3


@pytest.mark.parametrize("clip", [1.0, 0.5, 2.5])
def test_with_clip_c_the_perturbation_stays_within_c_eps(clip):
    eps = 0.1
    x, x_adv = perturbation(methods.get("n_fgsm", eps=eps, clip=clip))
    d = x_adv - x
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert d.abs().max() <= clip * eps + 1e-6
    assert d.abs().max() >= clip * eps - 1e-6  # the clip is reached, not merely respected


def test_noise_is_random_and_seeded():
    method = methods.get("n_fgsm", eps=0.1)
    _, a = perturbation(method, noise_seed=1)
    _, b = perturbation(method, noise_seed=1)
    _, c = perturbation(method, noise_seed=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
