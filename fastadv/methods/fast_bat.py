"""Fast-BAT (fast bi-level adversarial training) - Zhang, Zhang, Chen, Liu, Chang, Hong, Liu,
"Revisiting and advancing fast adversarial training through the lens of bi-level
optimization", ICML 2022.

Lower level delta*(theta) = P(z - (1/lambda) grad_d l_atk(theta, z)), l_atk = -CE_sum, with a
"Hessian-free" implicit gradient. Per batch, model in train mode throughout (bn_mode="train"):
  1. z0 ~ U(-eps, eps), z0 = P(z0)
  2. linearization point z (field ``linearization``):
       "pgd_nosign" (default)  z = P(z0 + a * grad_d CE_sum(f(x + z0)))
       "pgd_sign"              z = P(z0 + eps * sign(grad_d CE_sum(f(x + z0))))
       "uniform"               z = z0
       "corner"                z = P(eps * s), s uniform in {-1, +1} per coordinate
  3. g_z = grad_d CE_sum(f(x + z)) WITH create_graph
  4. delta* = P(z + a * g_z)          and the box-constraint mask
  5. H_i = [max(-eps, -x_i) + 1e-7 < delta*_i < min(eps, 1 - x_i) - 1e-7]
  6. g* = grad_d CE_sum(f(x + delta*)),  v = H * g* / lambda  (detached)
  7. update direction = grad_theta CE_sum(f(x + delta*)) / B + grad_theta <g_z, v> / B,
     i.e. the parameter gradient of the surrogate L = CE_sum(f(x+delta*))/B + sum(g_z * sg(v))/B.
Defaults: a = 5000/255 when eps <= 8/255 else 2000/255 (a multiplies the gradient of a
per-sample, un-averaged CE, so it depends on the input size: choose it for your data, see
:func:`suggest_alpha`); lambda = 10, not tied to a.

Minimum cost: 3 forwards + 3 backwards (one keeps its graph) + 1 double backward. Step 6 must
give g* AND the parameter gradient from ONE backward, but the loss contract returns a scalar;
so step 6 runs one torch.autograd.grad for the input and the parameters together, and the
returned scalar carries that parameter gradient as a linear term sum_p <p, sg(G_p)> whose
value is cancelled (it adds exactly 0) and whose gradient is exactly G_p. The loop's backward
then only runs the double backward through g_z. CE parts that need create_graph use plain
torch (fused backwards are once-differentiable).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch
import torch.nn.functional as F

from fastadv import ops

from ._base import Method, StepOutput, bn_mode, check_choice, input_grad

LINEARIZATIONS = ("pgd_nosign", "pgd_sign", "uniform", "corner")
MASK_TOL = 1e-7


@dataclasses.dataclass(frozen=True)
class FastBAT(Method):
    eps: float = 8 / 255
    alpha: Optional[float] = None  # None: 5000/255 if eps <= 8/255 else 2000/255
    lam: float = 10.0
    linearization: str = "pgd_nosign"
    bn_mode: str = "train"

    name = "fast_bat"

    def __post_init__(self):
        super().__post_init__()
        check_choice("linearization", self.linearization, LINEARIZATIONS)

    def step_size(self) -> float:
        if self.alpha is not None:
            return self.alpha
        return 5000 / 255 if self.eps <= 8 / 255 + 1e-12 else 2000 / 255

    def resolved(self) -> dict:
        return {**super().resolved(), "alpha": self.step_size()}

    def linearization_point(self, model, x, y, a):
        if self.linearization == "corner":
            corner = torch.randint(0, 2, x.shape, device=x.device).to(x.dtype) * 2 - 1
            return ops.pgd_step(x, corner, x, alpha=self.eps, eps=self.eps)
        z0 = ops.random_start(x, self.eps, kind="uniform")
        if self.linearization == "uniform":
            return z0
        z0.requires_grad_(True)
        grad = input_grad(F.cross_entropy(model(z0), y, reduction="sum"), z0)
        if self.linearization == "pgd_sign":
            return ops.pgd_step(z0.detach(), grad, x, alpha=self.eps, eps=self.eps)
        return ops.pgd_step(z0.detach(), grad, x, alpha=a, eps=self.eps, sign=False)

    def loss(self, model, x, y) -> StepOutput:
        a, batch = self.step_size(), x.shape[0]
        with bn_mode(model, self.bn_mode):
            x_z = self.linearization_point(model, x, y, a).requires_grad_(True)
            g_z = input_grad(F.cross_entropy(model(x_z), y, reduction="sum"), x_z,
                             create_graph=True)
            x_star, mask = ops.pgd_step_with_mask(x_z.detach(), g_z.detach(), x, alpha=a,
                                                  eps=self.eps, sign=False, tol=MASK_TOL)
        x_star.requires_grad_(True)
        logits = model(x_star)
        ce_sum = F.cross_entropy(logits, y, reduction="sum")
        params = [p for p in model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(ce_sum, [x_star, *params], allow_unused=True)
        v = ops.masked_scale(grads[0], mask, 1.0 / self.lam)
        carried = [(p, g) for p, g in zip(params, grads[1:]) if g is not None]
        linear = sum(((p * g.detach()).sum() for p, g in carried), ce_sum.new_zeros(()))
        implicit = (g_z * v).sum() / batch
        loss = ce_sum.detach() / batch + (linear - linear.detach()) / batch + implicit
        metrics = {"ce_adv": ce_sum.detach() / batch, "implicit": implicit.detach(),
                   "mask_frac": mask.float().mean()}
        return StepOutput(loss, logits.detach(), metrics)


def suggest_alpha(model, x, y, eps: float, *, target_fraction: float = 0.5) -> float:
    """A Fast-BAT step ``a`` for new data: the CIFAR default multiplies a raw per-sample input
    gradient, whose size depends on the image size and the network. Returns the ``a`` at which
    a non-sign step from x moves the median nonzero coordinate by ``target_fraction * eps``
    (the CIFAR default moves most coordinates to the eps-ball's edge at init)."""
    with bn_mode(model, "eval"):
        x_req = x.detach().clone().requires_grad_(True)
        grad = input_grad(F.cross_entropy(model(x_req), y, reduction="sum"), x_req)
    magnitude = grad.abs()
    nonzero = magnitude[magnitude > 0]
    if nonzero.numel() == 0:
        raise ValueError("the input gradient is zero everywhere; cannot size Fast-BAT's alpha")
    return float(target_fraction * eps / nonzero.median())
