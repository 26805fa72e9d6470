"""Training steps written with the pass structure of each method's official code: "what users
run today", the rows fastadv's own step is compared with (benchmarks/step_cases.py).

Plain PyTorch as the originals are written (no fused ops), with every pass they make kept,
the redundant ones too; the method's fastadv docstring cites the code and commit. Each step
function takes (model, optimizer, x, y, method, autocast) and ends with the optimizer step.
What each keeps that fastadv drops:
- fast_at (locuslab/fast_adversarial, train_fgsm.py): the attack's backward is a full
  backward (loss.backward() computes every parameter gradient, then zero_grad drops them).
- pgd_at (locuslab/robust_overfitting, train_cifar.py): every attack step's backward is a
  full one, a forward after the attack to pick the restart, and a clean forward for the
  logged accuracy after the update.
- trades (yaodongyu/TRADES, trades.py): a clean forward inside every attack step (the KL
  target is recomputed K times) and a third forward, a second clean one, in the loss.
- fast_trades (jinghuichen/BackwardSmoothing, trades_fast.py): the clean target's forward
  builds a graph, a logging forward after the attack, the loss as in TRADES' loss.
- backward_smoothing (same repository, trades_backward.py): a separate clean forward for the
  target besides the forward at x the first step differentiates.
- fast_bat (OPTML-Group/Fast-BAT, trainer.py, mode fast_bat): an eval-mode forward per batch
  for the logged clean accuracy, create_graph at z0, the forward at delta* run twice (once
  for g*, once for the update), and the implicit term as its own double backward.
- grad_align (tml-epfl/understanding-fast-adv-training, train.py): the FGSM gradient taken
  with create_graph (an extra graph, then detached).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def project(delta, x, eps):
    """clamp to the eps-ball, then to the pixel box [-x, 1 - x]."""
    delta = delta.clamp(-eps, eps)
    return torch.max(torch.min(delta, 1 - x), -x)


def uniform(x, eps):
    return (torch.rand_like(x) * 2 - 1) * eps


def kl_sum(logits_adv, logits_target):
    """nn.KLDivLoss(size_average=False)(log_softmax(adv), softmax(target)), as the codes
    write it."""
    return F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits_target, dim=1),
                    reduction="sum")


def update(optimizer, loss):
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def fast_at(model, optimizer, x, y, method, autocast):
    eps, alpha = method.eps, method.step_size()
    delta = project(uniform(x, eps), x, eps).requires_grad_(True)
    with autocast():
        loss = F.cross_entropy(model(x + delta), y)
    loss.backward()  # parameter gradients too, dropped by the zero_grad below
    delta = project(delta.detach() + alpha * delta.grad.sign(), x, eps)
    with autocast():
        loss = F.cross_entropy(model(x + delta), y)
    update(optimizer, loss)


def pgd_at(model, optimizer, x, y, method, autocast):
    eps, alpha = method.eps, method.step_size()
    delta = project(uniform(x, eps), x, eps).requires_grad_(True)
    for _ in range(method.steps):
        with autocast():
            loss = F.cross_entropy(model(x + delta), y)
        loss.backward()
        delta.data = project(delta.data + alpha * delta.grad.sign(), x, eps)
        delta.grad.zero_()
    with autocast():  # the restart choice (one restart: every point keeps its delta)
        F.cross_entropy(model(x + delta), y, reduction="none")
        loss = F.cross_entropy(model((x + delta.detach()).clamp(0, 1)), y)
    update(optimizer, loss)
    with autocast():  # the logged clean accuracy, with a graph
        model(x)



def signed_step(x_adv, grad, x, alpha, eps):
    """The official codes' PGD step: a signed step, projected onto the eps-ball and the box."""
    x_adv = x_adv.detach() + alpha * grad.sign()
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)


def trades_outer_step(model, optimizer, x, x_adv, y, method, autocast):
    """TRADES' and Backward Smoothing's outer update: CE(clean) + beta KL(clean || adv)."""
    model.train()
    with autocast():
        logits_nat = model(x)
        loss = F.cross_entropy(logits_nat, y) + \
            method.beta * kl_sum(model(x_adv), logits_nat) / x.shape[0]
    update(optimizer, loss)

def trades(model, optimizer, x, y, method, autocast):
    eps, alpha = method.eps, method.step_size()
    model.eval()
    x_adv = x.detach() + method.init_scale * torch.randn_like(x)
    for _ in range(method.steps):
        x_adv.requires_grad_(True)
        with autocast():
            loss_kl = kl_sum(model(x_adv), model(x))
        grad, = torch.autograd.grad(loss_kl, [x_adv])
        x_adv = signed_step(x_adv, grad, x, alpha, eps)
    model.train()
    with autocast():
        loss = F.cross_entropy(model(x), y) + \
            method.beta * kl_sum(model(x_adv), model(x)) / x.shape[0]
    update(optimizer, loss)


def fast_trades(model, optimizer, x, y, method, autocast):
    eps, alpha, batch = method.eps, method.step_size(), x.shape[0]
    model.eval()
    x_adv = x.detach() + uniform(x, eps)
    with autocast():
        logits_nat = model(x).detach()
    for _ in range(method.steps):
        x_adv.requires_grad_(True)
        with autocast():
            loss_inner = kl_sum(model(x_adv), logits_nat) / batch
        grad, = torch.autograd.grad(loss_inner, [x_adv])
        x_adv = signed_step(x_adv, grad, x, alpha, eps)
    with autocast():  # the logged inner loss
        (kl_sum(model(x_adv), logits_nat) / batch).detach()
    trades_outer_step(model, optimizer, x, x_adv, y, method, autocast)


def backward_smoothing(model, optimizer, x, y, method, autocast):
    eps, alpha, batch = method.eps, method.step_size(), x.shape[0]
    model.eval()
    x_adv = x.detach().requires_grad_(True)
    with autocast():
        logits_nat = model(x).detach()
        noise = method.gamma * (torch.rand_like(logits_nat) * 2 - 1)
        loss_os = -kl_sum(model(x_adv), logits_nat + noise) / batch
    grad, = torch.autograd.grad(loss_os, [x_adv])
    x_adv = signed_step(x_adv, grad, x, alpha, eps)
    x_adv.requires_grad_(True)
    with autocast():
        loss_inner = kl_sum(model(x_adv), logits_nat) / batch
    grad, = torch.autograd.grad(loss_inner, [x_adv])
    x_adv = signed_step(x_adv, grad, x, alpha, eps)
    trades_outer_step(model, optimizer, x, x_adv, y, method, autocast)


def fast_bat(model, optimizer, x, y, method, autocast):
    eps, a, batch = method.eps, method.step_size(), x.shape[0]
    params = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    with torch.no_grad(), autocast():  # the logged clean accuracy of every batch
        model(x)
    model.train()
    z_init = ((x + uniform(x, eps)).clamp(0, 1) - x).requires_grad_(True)
    with autocast():
        attack_loss = -F.cross_entropy(model(x + z_init), y, reduction="sum")
    grad, = torch.autograd.grad(attack_loss, z_init, retain_graph=True, create_graph=True)
    delta = project(z_init - a * grad, x, eps).detach().requires_grad_(True)
    with autocast():
        attack_loss = -F.cross_entropy(model(x + delta), y, reduction="sum")
    g_z, = torch.autograd.grad(attack_loss, delta, retain_graph=True, create_graph=True)
    delta_star = project(delta - a * g_z.detach(), x, eps)
    d = delta_star.detach()
    mask = ((d > torch.max(-x, torch.full_like(x, -eps)) + 1e-7) &
            (d < torch.min(1 - x, torch.full_like(x, eps)) - 1e-7)).float()
    delta_cur = d.clone().requires_grad_(True)
    for p in params:  # model.no_grad(): the input gradient only
        p.requires_grad_(False)
    with autocast():
        F.cross_entropy(model(x + delta_cur), y, reduction="sum").backward()
    for p in params:
        p.requires_grad_(True)
    implicit = (g_z * (mask * delta_cur.grad / method.lam)).sum()
    optimizer.zero_grad(set_to_none=True)
    implicit.backward()  # the double backward, on its own
    cross = [-p.grad / batch for p in params]
    with autocast():
        loss = F.cross_entropy(model(x + d), y, reduction="sum") / batch
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    with torch.no_grad():
        for p, c in zip(params, cross):
            p.grad.add_(c)
    optimizer.step()


def grad_align(model, optimizer, x, y, method, autocast):
    eps = method.eps
    delta = torch.zeros_like(x, requires_grad=True)
    with autocast():
        loss = F.cross_entropy(model((x + delta).clamp(0, 1)), y)
    grad, = torch.autograd.grad(loss, delta, create_graph=True)  # the extra graph
    grad = grad.detach()
    delta = project(delta.detach() + 1.25 * eps * grad.sign(), x, eps)
    with autocast():
        loss = F.cross_entropy(model(x + delta), y)
    noise = uniform(x, eps).requires_grad_(True)
    with autocast():
        grad2, = torch.autograd.grad(F.cross_entropy(model(x + noise), y), noise,
                                     create_graph=True)
    keep = (grad.flatten(1).norm(dim=1) != 0) & (grad2.flatten(1).norm(dim=1) != 0)
    g1, g2 = grad.flatten(1)[keep], grad2.flatten(1)[keep]
    cos = (g1 / g1.norm(dim=1, keepdim=True) * (g2 / g2.norm(dim=1, keepdim=True))).sum(1)
    update(optimizer, loss + method.weight() * (1.0 - cos.mean()))


STEPS = {"fast_at": fast_at, "pgd_at": pgd_at, "trades": trades, "fast_trades": fast_trades,
         "backward_smoothing": backward_smoothing, "fast_bat": fast_bat,
         "grad_align": grad_align}
