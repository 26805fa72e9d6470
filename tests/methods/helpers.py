"""Shared pieces of the method tests: a tiny float64 network with batch norm, a batch with
pixels at 0 and 1, seeded noise, the projection P and the other primitives of METHODS.md
written in plain PyTorch (no fastadv.ops, no method code), the transcriptions shared by more
than one test file, and the network-pass counter.

The transcriptions run in float64 so that a sign() of a gradient never flips on rounding.
Random starts are made identical by replacing fastadv.ops.random_start with a fake (the
``fake_start`` fixture of conftest.py) that draws from a seeded generator the transcription
also uses; the real random start is tested through the reference backend, whose draws come
from torch's global RNG (test_random_start.py).
"""
import torch
import torch.nn.functional as F
from torch import nn

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


# ---------------------------------------------------------------- METHODS.md primitives
def box(d, x):
    """Clamp a perturbation to the pixel box: 0 <= x + d <= 1."""
    return torch.maximum(torch.minimum(d, 1 - x), -x)


def P(d, x, eps):
    """Project onto |d|_inf <= eps and the pixel box."""
    return box(d.clamp(-eps, eps), x)


def input_grad(fn, d, create_graph=False):
    d = d.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(d), d, create_graph=create_graph)
    return g


def kl_sum(logits_p, logits_q):
    log_p, log_q = F.log_softmax(logits_p, 1), F.log_softmax(logits_q, 1)
    return (log_p.exp() * (log_p - log_q)).sum()


# ---------------------------------------------------------------- shared transcriptions
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


# ---------------------------------------------------------------- running and comparing
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
