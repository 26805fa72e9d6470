"""Models and data shared by the attack and evaluation tests (tests/attacks/,
tests/evaluation/).

A two-class linear model with logits [0, w.x + b] has, for a point away from the pixel box's
edges, the minimal L-inf adversarial distance |w.x + b| / ||w||_1 (Hoelder's inequality,
attained at the corner delta = -sign(w.x + b) * dist * sign(w)), so attack results can be
checked against closed-form ground truth. A small seeded MLP stands in for a real network
where no closed form is needed.
"""
import torch
from torch import nn


class TwoClassLinear(nn.Module):
    """logits [0, w.x + b]: minimal L-inf adversarial distance |w.x + b| / ||w||_1."""

    def __init__(self, w, b, masked_gradient=False):
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(float(b)))
        self.masked_gradient = masked_gradient

    def forward(self, x):
        z = x.flatten(1) @ self.w + self.b
        if self.masked_gradient:  # same logits, zero input gradient: gradient masking
            z = z.detach() + 0.0 * z
        return torch.stack([torch.zeros_like(z), z], dim=1)


def linear_problem(eps=0.05, n=48, dim=16, seed=0, margin=0.01):
    """(model, x, y, dist): n points in [0.3, 0.7]^D whose exact distance is at least
    `margin` away from eps and from 0, so no point sits on the robust/non-robust threshold
    or needs a tiny radius; the model is in eval mode."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, generator=g)
    x = 0.3 + 0.4 * torch.rand(4 * n, 1, 4, dim // 4, generator=g)
    b = -float((x.flatten(1) @ w).median())
    z = x.flatten(1) @ w + b
    dist = z.abs() / w.abs().sum()
    keep = ((dist - eps).abs() > margin) & (dist > margin)
    x, z, dist = x[keep][:n], z[keep][:n], dist[keep][:n]
    return TwoClassLinear(w, b).eval(), x, (z > 0).long(), dist


def small_net(classes=10, seed=0):
    """A seeded MLP on 1x4x4 inputs, in eval mode."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, classes)).eval()


def net_batch(model, n=32, seed=1):
    """n random 1x4x4 inputs labelled with the model's own predictions."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 4, 4, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    return x, y


def net_data(model, n=40, seed=1):
    """net_batch with the first 3 labels changed: a few clean errors for evaluate()."""
    x, y = net_batch(model.eval(), n=n, seed=seed)
    y[:3] = (y[:3] + 1) % 10
    return x, y
