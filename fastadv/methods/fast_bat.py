"""Fast-BAT (fast bi-level adversarial training) - Zhang, Zhang, Khanduri, Hong, Chang, Liu,
"Revisiting and advancing fast adversarial training through the lens of bi-level
optimization", ICML 2022. The update and its defaults are documented on :class:`FastBAT`.

How the update fits the one-scalar loss contract (DESIGN.md): step 6 must give g* AND the
parameter gradient from ONE backward, but ``loss`` returns a scalar; so step 6 runs one
torch.autograd.grad for the input and the parameters together, and the returned scalar
carries that parameter gradient as a linear term sum_p <p, sg(G_p)> whose value is cancelled
(it adds exactly 0) and whose gradient is exactly G_p. The loop's backward then only runs the
double backward through g_z. CE parts that need create_graph use plain torch (the fused
backwards are once-differentiable).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch
import torch.nn.functional as F

from fastadv import ops
from fastadv._checks import check_batch, check_choice, check_float, check_model
from fastadv.data import ImageData, as_float_images
from fastadv.models.mode import bn_mode, eval_mode

from ._base import Method, StepOutput, input_grad

LINEARIZATIONS = ("pgd_nosign", "pgd_sign", "uniform", "corner")
MASK_TOL = 1e-7


@dataclasses.dataclass(frozen=True)
class FastBAT(Method):
    """Fast-BAT: a non-sign lower-level step and a Hessian-free implicit gradient through the
    box-constraint mask of the bi-level view of adversarial training.

    Paper: Yihua Zhang, Guanhua Zhang, Prashant Khanduri, Mingyi Hong, Shiyu Chang, Sijia
    Liu, "Revisiting and advancing fast adversarial training through the lens of bi-level
    optimization", ICML 2022, arXiv 2112.12376.
    Official code: https://github.com/OPTML-Group/Fast-BAT (train.py --mode fast_bat,
    checked at commit 32bde537cc5b: step 5000/255 for --attack_eps <= 8 and 2000/255 above,
    --lmbda 10.0; trainer.py, checked at commit 01242017fc77: model in train mode throughout,
    attack loss -CE_sum, mask tolerance 1e-7. The train.py of commit 01242017fc77 has
    3000/255 above 8; METHODS.md and fastadv follow 2000/255).

    Update (bi-level view: lower level delta*(theta) = P(z - (1/lambda) grad_d l_atk(theta, z)),
    l_atk = -CE_sum, P(d) = clamp d to [-eps, eps], then to the pixel box [-x, 1 - x]). Per
    batch, with the model in ``bn_mode`` for steps 1-5 and in train mode for step 6:
      1. z0 = P(U(-eps, eps))
      2. linearization point z (field ``linearization``):
           "pgd_nosign" (default)  z = P(z0 + a * grad_d CE_sum(f(x + z0)))
           "pgd_sign"              z = P(z0 + eps * sign(grad_d CE_sum(f(x + z0))))
           "uniform"               z = z0
           "corner"                z = P(eps * s), s uniform in {-1, +1} per coordinate
      3. g_z = grad_d CE_sum(f(x + z)), kept WITH its graph (create_graph)
      4. delta* = P(z + a * g_z)                        (a second non-sign step of size a)
      5. H_i = 1 where max(-eps, -x_i) + 1e-7 < delta*_i < min(eps, 1 - x_i) - 1e-7, else 0
      6. g* = grad_d CE_sum(f(x + delta*)),  v = H * g* / lambda   (detached)
      7. update direction = grad_theta CE_sum(f(x + delta*)) / B + grad_theta <g_z, v> / B,
         the parameter gradient of L = CE_sum(f(x + delta*)) / B + sum(g_z * sg(v)) / B.
    Passes: 3 forwards, 3 backwards (one keeps its graph) and 1 double backward (the
    official code's extra logging forward and create_graph at z0 are skipped).
    Metrics: ``ce_adv``, ``implicit``, ``mask_frac``.

    Attributes:
        eps (float, default 8/255): L-inf radius in pixel units of [0, 1] images (the code's
            --attack_eps 8).
        alpha (float or None, default None): the non-sign step a of steps 2 and 4, in pixel
            units per unit of the gradient of the per-sample, un-averaged CE (a multiplies a
            raw gradient, hence its size). None resolves to 5000/255 when eps <= 8/255,
            else 2000/255 (the code's rule for CIFAR-10 and PreActResNet-18). The value
            depends on the input size and the network: for other data see
            :func:`suggest_alpha`.
        lam (float, default 10.0): lambda of the lower-level objective; the implicit term is
            scaled by 1/lambda (the code's --lmbda 10.0, not tied to a).
        linearization (str, default "pgd_nosign"): how z is chosen (step 2): "pgd_nosign"
            (the paper's and the code's default), "pgd_sign", "uniform" or "corner" (the
            paper's other options).
        bn_mode (str, default "train"): batch-norm mode while the perturbation is built;
            "train" as in the official code.
    """
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


# images of an ImageData suggest_alpha uses: a stable median, and one batch's memory
SUGGEST_POINTS = 256


def suggest_alpha(model, x, y=None, eps: Optional[float] = None, *,
                  target_fraction: float = 0.5) -> float:
    """A Fast-BAT step ``a`` for new data: the CIFAR default multiplies a raw per-sample input
    gradient, whose size depends on the image size and the network. Returns the ``a`` at which
    a non-sign step from x moves the median nonzero coordinate by ``target_fraction * eps``
    (the CIFAR default moves most coordinates to the eps-ball's edge at init).

    x, y: a batch of images (uint8, as fastadv.data.load holds them, or float in [0, 1]) and
    its labels, or x an ImageData and y None (its first SUGGEST_POINTS images are used); they
    are moved to the model's device. eps is in pixel units of [0, 1] images (required);
    target_fraction is a fraction of eps (> 0)."""
    check_model("model", model)
    if isinstance(x, ImageData):
        if y is not None:
            raise TypeError("y must be None when x is an ImageData (its own labels are used)")
        x, y = x.x[:SUGGEST_POINTS], x.y[:SUGGEST_POINTS]
    x = as_float_images(x)
    check_batch(x, y)
    eps = check_float("eps", eps, strictly_positive=True, maximum=1.0)
    target_fraction = check_float("target_fraction", target_fraction, strictly_positive=True)
    first = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    if first is not None:  # an ImageData lives on the CPU, the model perhaps on a GPU
        x, y = x.to(first.device), y.to(first.device)
    with eval_mode(model):
        x_req = x.detach().clone().requires_grad_(True)
        grad = input_grad(F.cross_entropy(model(x_req), y, reduction="sum"), x_req)
    magnitude = grad.abs()
    nonzero = magnitude[magnitude > 0]
    if nonzero.numel() == 0:
        raise ValueError("the input gradient is zero everywhere; cannot size Fast-BAT's alpha")
    return float(target_fraction * eps / nonzero.median())
