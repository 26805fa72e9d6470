"""fastadv.ops: the fused per-step ops of adversarial training, validated, in the
torch.nn.functional style (tensors positional, hyperparameters keyword-only).

All pixel quantities (x, eps, alpha) are in [0, 1] units; the model normalizes internally.

- ``random_start(x, eps)``: x + U(-eps, eps), x + scale·N(0, 1) or x, clipped to [0, 1].
- ``pgd_step(x_adv, grad, x, alpha=, eps=)``:
  x_adv' = clip01(clip(x_adv + alpha·sign(grad), x - eps, x + eps)) (Madry et al. 2018);
  ``sign=False`` steps along grad itself (Fast-BAT's lower level); ``pgd_step_`` in place.
- ``pgd_step_with_mask``: the step plus Fast-BAT's box-constraint mask H_C (Zhang et al.,
  ICML 2022): True where max(-eps, -x) + tol < x_adv' - x < min(eps, 1 - x) - tol.
- ``masked_scale(g, mask, scale)``: g ⊙ mask · scale (Fast-BAT's v = H ⊙ g / lambda).
- ``kl_div_logits(logits_q, logits_p)``: KL(softmax(logits_p) || softmax(logits_q)) over the
  last dimension, the perturbation loss of TRADES (Zhang et al., ICML 2019) and Backward
  Smoothing (Chen et al., AAAI 2022); its fused backward is one row-wise pass.

Arguments are checked here, once, and on metadata only (type, shape, dtype, device, layout):
no op reads a tensor value, so the GPU hot path never waits for the device. Pixel values are
checked where data enters training and evaluation, not per op call.

Backend choice: ``backend=`` > ``use_backend(...)`` > FASTADV_BACKEND > auto.

The package (DESIGN.md "ops"):

- ``__init__.py``  these validated public ops;
- ``reference.py`` the pure-PyTorch specification of every op, the test oracle;
- ``benchmark.py`` the op benchmark cases of ``fastadv bench`` and benchmarks/;
- ``_dispatch.py`` the implementation table, the backend choice, the operands' common layout;
- ``_library.py``  the torch.library custom ops and their eager fast path;
- ``_backends.py`` the four backends (reference, cpp, triton, cuda) and what each needs;
- ``_compiled.py`` the wrappers of the compiled extensions (cpp: fastadv._C from csrc/cpu/,
  cuda: fastadv._C_cuda from csrc/cuda/), written once for both.

A call crosses this file, _dispatch (resolve, layout), _library and the backend's function:
a Triton kernel file of fastadv.kernels (folder kernels/), a wrapper of _compiled, or an
adapter of the reference in _backends.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from fastadv._checks import check_bool, check_choice, check_float, check_like, check_tensor
from fastadv.ops import _library, reference
from fastadv.ops._dispatch import (BACKEND_NAMES, available_backends, backend_load_errors,
                                   common_layout, is_standard_layout, resolve, shares_layout,
                                   use_backend)

__all__ = ["random_start", "pgd_step", "pgd_step_", "pgd_step_with_mask", "masked_scale",
           "kl_div_logits", "available_backends", "backend_load_errors", "use_backend",
           "BACKEND_NAMES"]

RANDOM_START_KINDS = ("uniform", "normal", "zero")
REDUCTIONS = ("batchmean", "sum", "none")
DEFAULT_NORMAL_SCALE = 0.001  # TRADES' start: x + 0.001·N(0, I)
SEED_RANGE = 2 ** 62


def _draw_seed(generator: Optional[torch.Generator]) -> int:
    """One draw from ``generator`` (or torch's default CPU RNG), so torch.manual_seed and
    explicit generators make every backend's random start reproducible."""
    if generator is not None and generator.device.type != "cpu":
        return int(torch.randint(0, SEED_RANGE, (1,), generator=generator,
                                 device=generator.device).item())
    return int(torch.randint(0, SEED_RANGE, (1,), generator=generator).item())


def _random_start_seed(generator: Optional[torch.Generator]) -> int:
    """The seed handed to the backends: a draw from a CPU generator seeded with a draw from
    ``generator``. The second draw is how the seed reached the kernels' RNG when backends
    took a generator rebuilt inside the custom op; it is kept so that the cpp, triton and
    cuda backends draw the same noise for a seed as before, and seeded runs reproduce their
    recorded numbers."""
    return _draw_seed(torch.Generator().manual_seed(_draw_seed(generator)))


def _check_step_args(x_adv, grad, x, alpha, eps, sign):
    check_tensor("x", x)
    check_like("x_adv", x_adv, "x", x)
    check_like("grad", grad, "x", x)
    alpha = check_float("alpha", alpha, strictly_positive=True)
    eps = check_float("eps", eps, minimum=0.0)
    check_bool("sign", sign)
    return alpha, eps


def pgd_step(x_adv: torch.Tensor, grad: torch.Tensor, x: torch.Tensor, *, alpha: float,
             eps: float, sign: bool = True, backend: Optional[str] = None) -> torch.Tensor:
    """One projected step: clip01(clip(x_adv + alpha·s, x - eps, x + eps)), s = sign(grad)
    (or grad when ``sign=False``). Returns a new tensor."""
    alpha, eps = _check_step_args(x_adv, grad, x, alpha, eps, sign)
    impl = resolve("pgd_step", x.device, x.dtype, backend)
    x_adv, grad, x = common_layout(x_adv.detach(), grad.detach(), x.detach())
    return _library.pgd_step(x_adv, grad, x, alpha, eps, sign, impl)


def pgd_step_(x_adv: torch.Tensor, grad: torch.Tensor, x: torch.Tensor, *, alpha: float,
              eps: float, sign: bool = True, backend: Optional[str] = None) -> torch.Tensor:
    """In-place :func:`pgd_step` on ``x_adv``; returns ``x_adv``."""
    alpha, eps = _check_step_args(x_adv, grad, x, alpha, eps, sign)
    if x_adv.requires_grad and torch.is_grad_enabled():
        raise ValueError("x_adv requires grad; detach it (x_adv = x_adv.detach()) before an "
                         "in-place step")
    impl = resolve("pgd_step", x.device, x.dtype, backend)
    if shares_layout(grad, x_adv) and shares_layout(x, x_adv):
        _, grad, x = common_layout(x_adv, grad.detach(), x.detach())
        _library.pgd_step_(x_adv, grad, x, alpha, eps, sign, impl)
    else:
        contiguous = common_layout(x_adv.detach(), grad.detach(), x.detach())
        x_adv.copy_(_library.pgd_step(*contiguous, alpha, eps, sign, impl))
    return x_adv


def pgd_step_with_mask(x_adv: torch.Tensor, grad: torch.Tensor, x: torch.Tensor, *,
                       alpha: float, eps: float, sign: bool = False, tol: float = 1e-7,
                       backend: Optional[str] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`pgd_step` (non-sign by default) fused with Fast-BAT's box-constraint mask H_C.

    Returns ``(x_adv_new, mask)``; ``mask`` is a bool tensor, True where the new perturbation
    d = x_adv_new - x lies strictly inside both the eps-ball and the pixel box:
    max(-eps, -x) + tol < d < min(eps, 1 - x) - tol.
    """
    alpha, eps = _check_step_args(x_adv, grad, x, alpha, eps, sign)
    tol = check_float("tol", tol, minimum=0.0)
    impl = resolve("pgd_step_with_mask", x.device, x.dtype, backend)
    x_adv, grad, x = common_layout(x_adv.detach(), grad.detach(), x.detach())
    return _library.pgd_step_with_mask(x_adv, grad, x, alpha, eps, sign, tol, impl)


def masked_scale(g: torch.Tensor, mask: torch.Tensor, scale: float, *,
                 backend: Optional[str] = None) -> torch.Tensor:
    """g ⊙ mask · scale in one pass (mask is a bool tensor of g's shape)."""
    check_tensor("g", g)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got dtype {mask.dtype}")
    if mask.shape != g.shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)} but g has shape "
                         f"{tuple(g.shape)}; they must match")
    if mask.device != g.device:
        raise ValueError(f"mask is on {mask.device} but g is on {g.device}")
    scale = check_float("scale", scale)
    impl = resolve("masked_scale", g.device, g.dtype, backend)
    g_flat, mask_flat = common_layout(g.detach(), mask)
    return _library.masked_scale(g_flat, mask_flat, scale, impl)


def random_start(x: torch.Tensor, eps: float, *, kind: str = "uniform",
                 scale: Optional[float] = None, clamp: bool = True,
                 generator: Optional[torch.Generator] = None,
                 backend: Optional[str] = None) -> torch.Tensor:
    """Starting point of an attack: x + U(-eps, eps) ("uniform"), x + scale·N(0, 1)
    ("normal", scale defaults to 0.001 as in TRADES) or x ("zero"); clipped to [0, 1] when
    ``clamp``. Kernel backends draw the noise in-kernel from a seed taken from ``generator``
    (or torch's global RNG), so torch.manual_seed makes it reproducible. That seed is an int
    drawn on the CPU per call: a host RNG read, not a device sync. Traced by torch.compile or
    captured into a CUDA graph (and with no ``generator``), the noise comes from torch's own
    generator on x's device instead (:func:`_noise_from_device_rng`)."""
    check_tensor("x", x)
    eps = check_float("eps", eps, minimum=0.0)
    check_choice("kind", kind, RANDOM_START_KINDS)
    check_bool("clamp", clamp)
    if scale is not None and kind != "normal":
        raise ValueError(f"scale applies only to kind='normal', got scale={scale!r} with "
                         f"kind={kind!r}")
    scale = DEFAULT_NORMAL_SCALE if scale is None else check_float("scale", scale, minimum=0.0)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    x = x.detach()
    # resolved before the "zero" shortcut too, so a bad or unavailable backend always raises
    impl = resolve("random_start", x.device, x.dtype, backend)
    if kind == "zero":
        return x.clamp(0.0, 1.0) if clamp else x.clone()
    if generator is None and _noise_from_device_rng(x):
        return reference.random_start(x, eps, kind=kind, scale=scale, clamp=clamp)
    if not is_standard_layout(x):
        x = x.contiguous()
    return _library.random_start(x, eps, kind, scale, clamp, _random_start_seed(generator),
                                 impl)


def _noise_from_device_rng(x: torch.Tensor) -> bool:
    """Whether random_start is being traced by torch.compile or captured into a CUDA graph.
    A seed drawn on the host would then be frozen into the graph (and its .item() would break
    a fullgraph trace), so every replay would draw the same noise. torch's own generator keeps
    its Philox seed and offset on the device and advances the offset on every replay (inductor
    compiles its draws the same way), so the noise changes from step to step."""
    if torch.compiler.is_compiling():
        return True
    return x.is_cuda and torch.cuda.is_current_stream_capturing()


def kl_div_logits(logits_q: torch.Tensor, logits_p: torch.Tensor, *,
                  reduction: str = "batchmean", backend: Optional[str] = None) -> torch.Tensor:
    """KL(softmax(logits_p) || softmax(logits_q)) over the last dimension.

    ``logits_p`` gives the target distribution (the clean or noisy prediction), ``logits_q``
    the distribution being moved (the adversarial prediction). Differentiable w.r.t. both.
    reduction: "batchmean" (sum / size of the first dimension, 0 for an empty batch),
    "sum", or "none" (one value per row). Fused backends have a once-differentiable backward;
    ``backend="reference"`` is plain autograd and supports double backward.
    """
    check_tensor("logits_q", logits_q)
    check_like("logits_p", logits_p, "logits_q", logits_q)
    check_choice("reduction", reduction, REDUCTIONS)
    if logits_q.dim() == 0 or logits_q.shape[-1] == 0:
        raise ValueError(f"logits_q must have a non-empty last (class) dimension, got shape "
                         f"{tuple(logits_q.shape)}")
    impl = resolve("kl_div_logits", logits_q.device, logits_q.dtype, backend)
    classes = logits_q.shape[-1]
    q2 = logits_q.reshape(-1, classes).contiguous()
    p2 = logits_p.reshape(-1, classes).contiguous()
    if impl.backend == "reference":  # plain autograd: twice differentiable
        rows = reference.kl_div_logits(q2, p2)
    else:
        rows = _library.kl_div_logits(q2, p2, impl)
    rows = rows.reshape(logits_q.shape[:-1])
    if reduction == "none":
        return rows
    total = rows.sum()
    if reduction == "sum":
        return total
    batch = logits_q.shape[0] if logits_q.dim() > 1 else 1
    return total / max(batch, 1)
