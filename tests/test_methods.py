"""Every method's loss and parameter gradient against an independent plain-PyTorch
transcription of METHODS.md (written here from the spec: no fastadv.ops, no method code),
Fast-BAT's surrogate against the explicit two-pass procedure, network-pass counts, the
registry and bad hyperparameters.

The transcriptions run in float64 so that a sign() of a gradient never flips on rounding.
Random starts are made identical by replacing fastadv.ops.random_start with a fake that draws
from a seeded generator the transcription also uses; the real random start is tested through
the reference backend, whose draws come from torch's global RNG.
"""
import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastadv import methods, ops

B, C, H, W, K = 6, 2, 4, 4, 3


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(C, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.act = nn.Softplus(beta=2.0)  # curved, so double backward terms are not zero
        self.fc = nn.Linear(3 * H * W, K)

    def forward(self, x):
        return self.fc(self.act(self.bn(self.conv(x))).flatten(1))


def make(seed=0):
    torch.manual_seed(seed)
    model = Tiny().double()
    # move BN away from its identity init so train and eval modes differ
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.3, 0.3)
        model.bn.running_var.uniform_(0.5, 1.5)
    x = torch.rand(B, C, H, W, dtype=torch.float64)
    x[0, 0, 0, :2] = 0.0
    x[1, 1, 1, :2] = 1.0
    y = torch.randint(0, K, (B,))
    return model.train(), x, y


class Noise:
    """The same seeded draws for the fake random_start and the transcription."""

    def __init__(self, seed=123):
        self.gen = torch.Generator().manual_seed(seed)

    def uniform(self, like):
        return torch.rand(like.shape, generator=self.gen, dtype=like.dtype) * 2 - 1

    def normal(self, like):
        return torch.randn(like.shape, generator=self.gen, dtype=like.dtype)


@pytest.fixture
def fake_start(monkeypatch):
    noise = Noise()
    calls = []

    def random_start(x, eps, *, kind="uniform", scale=None, clamp=True, generator=None,
                     backend=None):
        calls.append(dict(kind=kind, clamp=clamp, scale=scale))
        if kind == "zero":
            out = x.clone()
        elif kind == "uniform":
            out = x + eps * noise.uniform(x)
        else:
            out = x + (0.001 if scale is None else scale) * noise.normal(x)
        return out.clamp(0, 1) if clamp else out

    monkeypatch.setattr(ops, "random_start", random_start)
    return calls


# ---------------------------------------------------------------- the transcriptions
def P(d, x, eps):
    d = d.clamp(-eps, eps)
    return torch.maximum(torch.minimum(d, 1 - x), -x)


def input_grad(fn, d, create_graph=False):
    d = d.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(d), d, create_graph=create_graph)
    return g


def kl_sum(logits_p, logits_q):
    log_p, log_q = F.log_softmax(logits_p, 1), F.log_softmax(logits_q, 1)
    return (log_p.exp() * (log_p - log_q)).sum()


def ref_fast_at(model, x, y, eps, alpha, noise):
    model.train()
    d0 = P(eps * noise.uniform(x), x, eps)
    g = input_grad(lambda d: F.cross_entropy(model(x + d), y), d0)
    d = P(d0 + alpha * g.sign(), x, eps)
    return F.cross_entropy(model(x + d), y)


def ref_pgd_at(model, x, y, eps, alpha, steps, noise):
    model.train()
    d = P(eps * noise.uniform(x), x, eps)
    for _ in range(steps):
        g = input_grad(lambda d: F.cross_entropy(model(x + d), y), d)
        d = P(d + alpha * g.sign(), x, eps)
    return F.cross_entropy(model(x + d), y)


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


def ref_fast_bat_parts(model, x, y, eps, a, lam, noise):
    """(CE_sum(f(x+delta*)), g_z with graph, v) of METHODS.md's Fast-BAT steps 1-6."""
    model.train()
    ce_sum = lambda d: F.cross_entropy(model(x + d), y, reduction="sum")  # noqa: E731
    z0 = P(eps * noise.uniform(x), x, eps)
    z = P(z0 + a * input_grad(ce_sum, z0), x, eps)
    z_req = z.detach().requires_grad_(True)
    (g_z,) = torch.autograd.grad(ce_sum(z_req), z_req, create_graph=True)
    delta = P(z + a * g_z.detach(), x, eps)
    lower = torch.maximum(-x, torch.full_like(x, -eps))
    upper = torch.minimum(1 - x, torch.full_like(x, eps))
    mask = (delta > lower + 1e-7) & (delta < upper - 1e-7)
    delta = delta.requires_grad_(True)
    ce_star = ce_sum(delta)
    (g_star,) = torch.autograd.grad(ce_star, delta, retain_graph=True)
    v = (mask * g_star / lam).detach()
    return ce_star, g_z, v, mask


def param_grads(model):
    return [p.grad.clone() for p in model.parameters()]


def assert_same(value, grads, ref_value, ref_model_params):
    ref_grads = torch.autograd.grad(ref_value, ref_model_params, allow_unused=True)
    torch.testing.assert_close(value.detach(), ref_value.detach(), rtol=1e-9, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, torch.zeros_like(g) if r is None else r, rtol=1e-8, atol=1e-11)


def run_method(method, model, x, y):
    out = method.loss(model, x, y)
    assert all(p.grad is None for p in model.parameters()), "the attack left parameter gradients"
    out.loss.backward()
    return out, param_grads(model)


# ---------------------------------------------------------------- equality tests
def test_fast_at_matches_transcription(fake_start):
    model, x, y = make()
    ref = copy.deepcopy(model)
    out, grads = run_method(methods.get("fast_at", eps=0.1), model, x, y)
    ref_loss = ref_fast_at(ref, x, y, 0.1, 0.125, Noise())
    assert_same(out.loss, grads, ref_loss, list(ref.parameters()))
    assert fake_start == [dict(kind="uniform", clamp=True, scale=None)]
    assert model.training


@pytest.mark.parametrize("name,steps,alpha", [("pgd_at", 3, 0.03), ("pgd2_at", 2, None)])
def test_pgd_at_matches_transcription(fake_start, name, steps, alpha):
    model, x, y = make(1)
    ref = copy.deepcopy(model)
    kwargs = {} if alpha is None else {"alpha": alpha, "steps": steps}
    method = methods.get(name, eps=0.1, **kwargs)
    out, grads = run_method(method, model, x, y)
    ref_loss = ref_pgd_at(ref, x, y, 0.1, 0.05 if alpha is None else alpha, steps, Noise())
    assert_same(out.loss, grads, ref_loss, list(ref.parameters()))


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


def test_backward_smoothing_matches_transcription():
    model, x, y = make(3)
    ref = copy.deepcopy(model)
    torch.manual_seed(7)
    out, grads = run_method(methods.get("backward_smoothing", eps=0.1, gamma=2.0), model, x, y)
    ref_loss = ref_backward_smoothing(ref, x, y, 0.1, 0.1, 10.0, 2.0, seed=7)
    assert_same(out.loss, grads, ref_loss, list(ref.parameters()))
    assert model.training


def test_grad_align_matches_transcription(fake_start):
    model, x, y = make(4)
    ref = copy.deepcopy(model)
    out, grads = run_method(methods.get("grad_align", eps=0.1, reg=0.7), model, x, y)
    ref_loss = ref_grad_align(ref, x, y, 0.1, 0.7, Noise())  # the zero start draws nothing
    assert_same(out.loss, grads, ref_loss, list(ref.parameters()))
    assert [c["kind"] for c in fake_start] == ["zero", "uniform"]
    assert fake_start[1]["clamp"] is False


def test_fast_bat_matches_two_pass_procedure(fake_start):
    model, x, y = make(5)
    ref = copy.deepcopy(model)
    eps, a, lam = 0.1, 0.3, 4.0
    out, grads = run_method(methods.get("fast_bat", eps=eps, alpha=a, lam=lam), model, x, y)
    ce_star, g_z, v, mask = ref_fast_bat_parts(ref, x, y, eps, a, lam, Noise())
    assert 0 < mask.double().mean() < 1, "pick a so that the mask is mixed"
    params = list(ref.parameters())
    ordinary = torch.autograd.grad(ce_star / B, params, retain_graph=True)
    implicit = torch.autograd.grad((g_z * v).sum() / B, params, allow_unused=True)
    two_pass = [o + (0 if i is None else i) for o, i in zip(ordinary, implicit)]
    assert any(i is not None and i.abs().max() > 1e-6 for i in implicit), "implicit term vanished"
    value = ce_star.detach() / B + (g_z * v).sum().detach() / B
    torch.testing.assert_close(out.loss.detach(), value, rtol=1e-9, atol=1e-12)
    for g, r in zip(grads, two_pass):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-11)
    torch.testing.assert_close(out.metrics["mask_frac"], mask.float().mean())


def test_fast_bat_surrogate_equals_two_pass_in_transcription(fake_start):
    model, x, y = make(6)
    ce_star, g_z, v, _ = ref_fast_bat_parts(model, x, y, 0.1, 0.3, 10.0, Noise())
    params = list(model.parameters())
    surrogate = ce_star / B + (g_z * v.detach()).sum() / B
    via_surrogate = torch.autograd.grad(surrogate, params, retain_graph=True)
    ordinary = torch.autograd.grad(ce_star / B, params, retain_graph=True)
    explicit = torch.autograd.grad(g_z, params, grad_outputs=v / B, allow_unused=True)
    for s, o, e in zip(via_surrogate, ordinary, explicit):
        torch.testing.assert_close(s, o + (0 if e is None else e))


@pytest.mark.parametrize("linearization", ["uniform", "pgd_sign", "corner"])
def test_fast_bat_linearization_choices_run(linearization):
    model, x, y = make(7)
    out = methods.get("fast_bat", eps=0.1, alpha=0.3, linearization=linearization).loss(model, x, y)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# ---------------------------------------------------------------- real random starts
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


# ---------------------------------------------------------------- pass counts
class PassCounter:
    """Forwards: calls of the model. Backwards: gradients arriving at the first layer's output,
    once per forward graph a backward (or double backward) traverses."""

    def __init__(self, model):
        self.forwards = self.backwards = 0
        model.register_forward_hook(self._count_forward)
        model.conv.register_forward_hook(self._hook_output)

    def _count_forward(self, *_):
        self.forwards += 1

    def _hook_output(self, module, inputs, output):
        if output.requires_grad:
            output.register_hook(self._count_backward)

    def _count_backward(self, grad):
        self.backwards += 1


# (forwards, backward traversals). TRADES-family final backward traverses the clean and the
# adversarial graphs (2); Fast-BAT: z0, z (create_graph), delta* (input and parameters in one
# pass), then the loop's double backward through z's graph; GradAlign: x, eta (create_graph),
# then the loop's backward through x+d and the double backward through eta's graph.
PASSES = {
    "standard": ({}, 1, 1),
    "fast_at": ({}, 2, 2),
    "pgd_at": ({"steps": 3}, 4, 4),
    "pgd2_at": ({}, 3, 3),
    "trades": ({"steps": 3}, 1 + 3 + 2, 3 + 2),
    "fast_trades": ({}, 1 + 1 + 2, 1 + 2),
    "backward_smoothing": ({}, 2 + 2, 2 + 2),
    "fast_bat": ({"alpha": 0.3}, 3, 4),
    "grad_align": ({}, 3, 4),
}


@pytest.mark.parametrize("name", sorted(PASSES))
def test_network_passes_are_minimal(name):
    overrides, forwards, backwards = PASSES[name]
    model, x, y = make(10)
    counter = PassCounter(model)
    out = methods.get(name, eps=0.1, **overrides).loss(model, x, y)
    out.loss.backward()
    assert (counter.forwards, counter.backwards) == (forwards, backwards)


def test_registry_covers_all_methods():
    assert set(methods.available()) == set(PASSES)
    assert set(PASSES) >= {"fast_at", "pgd_at", "pgd2_at", "trades", "fast_trades",
                           "backward_smoothing", "fast_bat", "grad_align"}


# ---------------------------------------------------------------- defaults and bad input
def test_defaults_follow_the_papers():
    assert methods.get("fast_at").resolved()["alpha"] == pytest.approx(10 / 255)
    assert methods.get("pgd_at").steps == 10 and methods.get("pgd_at").alpha == pytest.approx(2 / 255)
    assert methods.get("pgd2_at", eps=0.3).resolved()["alpha"] == pytest.approx(0.15)
    t = methods.get("trades")
    assert (t.beta, t.steps, t.bn_mode, t.init) == (6.0, 10, "eval", "normal")
    assert methods.get("fast_trades").resolved()["alpha"] == pytest.approx(8 / 255)
    assert methods.get("fast_trades", steps=2).resolved()["alpha"] == pytest.approx(5 / 255)
    bs = methods.get("backward_smoothing")
    assert (bs.beta, bs.gamma, bs.resolved()["alpha"]) == (10.0, 1.0, pytest.approx(8 / 255))
    fb = methods.get("fast_bat")
    assert fb.resolved()["alpha"] == pytest.approx(5000 / 255) and fb.lam == 10.0
    assert methods.get("fast_bat", eps=16 / 255).resolved()["alpha"] == pytest.approx(2000 / 255)
    assert fb.linearization == "pgd_nosign" and fb.bn_mode == "train"
    assert methods.get("grad_align").resolved()["reg"] == pytest.approx(0.2)
    assert methods.get("grad_align", eps=16 / 255).resolved()["reg"] == pytest.approx(2.0)


@pytest.mark.parametrize("name,overrides,match", [
    ("nope", {}, "available"),
    ("fast_at", {"beta": 1.0}, "valid"),
    ("fast_at", {"eps": 1.5}, "eps"),
    ("fast_at", {"eps": -0.1}, "eps"),
    ("pgd_at", {"steps": 0}, "steps"),
    ("pgd_at", {"alpha": 0.0}, "alpha"),
    ("trades", {"init": "gaussian"}, "init"),
    ("trades", {"bn_mode": "frozen"}, "bn_mode"),
    ("fast_bat", {"lam": 0}, "lam"),
    ("fast_bat", {"linearization": "random"}, "linearization"),
    ("backward_smoothing", {"gamma": float("nan")}, "gamma"),
])
def test_bad_hyperparameters_raise(name, overrides, match):
    with pytest.raises(ValueError, match=match):
        methods.get(name, **overrides)


def test_option_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="bn_mode must be a str"):
        methods.get("trades", bn_mode=None)


def test_methods_are_frozen():
    method = methods.get("trades")
    with pytest.raises(dataclasses.FrozenInstanceError):
        method.beta = 1.0


def test_suggest_alpha_scales_with_eps():
    model, x, y = make(12)
    a1 = methods.suggest_alpha(model, x, y, 0.1)
    a2 = methods.suggest_alpha(model, x, y, 0.2)
    assert a1 > 0 and a2 == pytest.approx(2 * a1)
