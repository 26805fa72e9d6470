"""evaluate(): clean accuracy plus robust accuracy under a list of attacks, with the
point-wise worst case over all of them, as a JSON-serializable record in the spirit of
RobustBench's (Croce et al., "RobustBench: a standardized adversarial robustness benchmark",
NeurIPS 2021 Datasets and Benchmarks). The loop over attacks and batches; what it uses sits
next to it in fastadv.evaluation: inputs.py (data -> checked tensors), specs.py ("pgd-50-10"),
options.py (the attack options), runners.py (one spec on one batch), sanity.py (warnings).

Protocol (METHODS.md, "Evaluation protocols"):
- the model runs in eval mode; the mode of every submodule is restored afterwards;
- every attack runs on every point the model classifies correctly (so each attack's number is
  its own and comparable with the papers'); points misclassified clean are non-robust for
  every attack (and have RayS distance 0);
- top-level "robust_accuracy" is the share of points that are correctly classified and
  survive every attack: a point is robust only if all attacks failed on it, so it never
  exceeds any single attack's number;
- each attack gets its own seeded generator, so adding or reordering attacks does not change
  the others' random starts; PGD-K-R's first restarts are those of PGD-K-1.

Errors: every argument is checked before any attack runs; the pixels of all points once, as
they enter (inputs.py), the labels once against the model's class count (first clean batch).
Sanity warnings (sanity.py): probability outputs, randomized model, black-box robust accuracy
below white-box PGD's.
"""
from __future__ import annotations

import platform
import time
import zlib
from typing import Any, Dict, Optional, Sequence, Union

import torch
from torch import nn

from fastadv._checks import (check_device, check_eps, check_int, check_labels, check_model,
                             check_optional_bool)
from fastadv.attacks.autoattack import package_version
from fastadv.evaluation import inputs, runners, sanity
from fastadv.evaluation.distributed import PointShard, batch_seed
from fastadv.evaluation.options import check_options
from fastadv.evaluation.progress import AttackProgress
from fastadv.evaluation.specs import parse_specs
from fastadv.models.mode import eval_mode

__all__ = ["evaluate"]

UNFOUND_RAYS_DISTANCE = 1.0  # the largest L-inf distance inside the [0, 1] box


def _device_of(model, device) -> torch.device:
    """The device the attacks run on: ``device`` when given (of the model's parameters' type),
    else the parameters' device (CPU for a model without parameters)."""
    first = next(model.parameters(), None) if isinstance(model, nn.Module) else None
    model_device = None if first is None else first.device
    if device is None:
        return model_device or torch.device("cpu")
    device = check_device("device", device)  # exists on this machine
    if model_device is not None and model_device.type != device.type:
        raise ValueError(f"device={str(device)!r} but the model's parameters are on "
                         f"{model_device}; move the model first (model.to({str(device)!r}))")
    return device


def _sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so that an attack's "seconds" are its own."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _versions(uses_autoattack: bool) -> Dict[str, str]:
    import fastadv
    versions = {"torch": torch.__version__, "fastadv": fastadv.__version__,
                "python": platform.python_version()}
    if uses_autoattack:
        versions["pyautoattack"] = package_version()
    return versions


def _attack_seed(seed: int, spec) -> int:
    # the restart count is left out on purpose: pgd-K-1 and pgd-K-R then share their first
    # restarts, so more restarts can never raise robust accuracy, not even by chance
    key = f"{spec.kind}-{spec.steps}-{spec.queries}"
    return (seed * 1_000_003 + zlib.crc32(key.encode())) % (2 ** 63)


def evaluate(model: nn.Module, data, *, attacks: Union[str, Sequence[str]] = ("clean", "pgd-20"),
             eps: float = 8 / 255, batch_size: int = 256, n_examples: Optional[int] = None,
             seed: int = 0, device=None, progress: Optional[bool] = None,
             **options: Any) -> Dict[str, Any]:
    """Evaluate ``model`` on ``data`` under ``attacks`` at L-inf radius ``eps``.

    data: an (x, y) pair of tensors (x in [0, 1], or uint8), a fastadv.data.ImageData, or an
    iterable of (x, y) batches (DataLoader, fastadv.data.DeviceLoader); the first
    ``n_examples`` points are used. attacks: specs such as "clean", "fgsm", "pgd-20",
    "pgd-50-10", "autoattack", "rays", "rays-1000", "transfer" (see
    fastadv.evaluation.specs), a list or a comma-separated string. eps: in pixel units of
    [0, 1] images (8/255, not 8). options: see fastadv.evaluation.options (alpha, loss,
    surrogate, autoattack_version, autoattack_attacks, rays_early_stop, rays_rtol, backend).
    device: None = the model's; one that does not exist is a ValueError. progress: None = per
    attack a bar (points done, running robust accuracy, ETA) on a terminal, else one line
    per attack on stderr; True = the bar; False = silent.
    Under torchrun each rank attacks its share of the batches (fastadv.evaluation.distributed)
    and every rank returns the record a one-process run gives.

    Returns {"n", "eps", "clean_accuracy", "robust_accuracy", "attacks": {spec: {...}},
    "versions": {...}, ...}, JSON-serializable.
    """
    check_model("model", model)
    eps = check_eps(eps)
    check_int("batch_size", batch_size, minimum=1)
    check_int("seed", seed, minimum=0)
    check_optional_bool("progress", progress)
    specs = parse_specs(attacks)
    options = check_options(options)
    if any(s.kind == "transfer" for s in specs) and options["surrogate"] is None:
        raise ValueError("attack 'transfer' needs a surrogate model: evaluate(..., "
                         "surrogate=other_model)")
    if any(s.kind == "autoattack" for s in specs):
        package_version()  # fail before any work when pyautoattack is missing
    device = _device_of(model, device)
    shard = PointShard(device)  # under torchrun: this rank's batches of attacked points
    x_all, y_all = inputs.collect(data, n_examples)
    n = x_all.shape[0]

    with eval_mode(model):
        correct, num_classes = _clean_pass(model, x_all, y_all, batch_size, device)
        robust_all = correct.clone()
        per_attack: Dict[str, Dict[str, Any]] = {}
        for spec in specs:
            generator_seed = _attack_seed(seed, spec)
            generator = torch.Generator(device=device)
            generator.manual_seed(generator_seed)
            success = ~correct
            distance = torch.zeros(n) if spec.kind == "rays" else None
            queries = torch.zeros(n, dtype=torch.long) if spec.kind == "rays" else None
            todo = correct.nonzero().squeeze(1)
            _sync(device)
            started = time.perf_counter()
            with AttackProgress(spec.text, todo.numel(), n, shard.progress(progress)) as bar:
                for begin in shard.starts(todo.numel(), batch_size):
                    generator.manual_seed(batch_seed(generator_seed, begin))  # rank-independent
                    index = todo[begin:begin + batch_size]
                    xb = x_all[index].to(device)
                    yb = y_all[index].to(device)
                    outcome = runners.run_batch(spec, model, xb, yb, eps=eps, options=options,
                                                 seed=generator_seed % (2 ** 31),
                                                 generator=generator)
                    success[index] = outcome.success.cpu()
                    if distance is not None:
                        distance[index] = outcome.distance.float().cpu()
                        queries[index] = outcome.queries.cpu()
                    bar.batch_done(index.numel(), int((~success[index]).sum()))
                success, distance, queries = shard.gather(success, distance, queries)
                _sync(device)
                seconds = time.perf_counter() - started
                bar.finish(float((~success).float().mean()), seconds)
            robust = ~success
            robust_all &= robust
            record = {"robust_accuracy": float(robust.float().mean()),
                      "seconds": seconds, "n_attacked": int(todo.numel())}
            record.update(runners.settings(spec, options, eps))
            if distance is not None:
                not_found = ~torch.isfinite(distance)
                capped = torch.where(not_found, torch.full_like(distance, UNFOUND_RAYS_DISTANCE),
                                     distance)
                record["adbd"] = float(capped.mean())
                record["n_not_found"] = int(not_found.sum())
                record["mean_queries"] = float(queries[correct].float().mean()) \
                    if bool(correct.any()) else 0.0
            per_attack[spec.text] = record

    sanity.warn_if_gradient_masking(
        {s.text: per_attack[s.text]["robust_accuracy"] for s in specs},
        {s.text: s.kind for s in specs}, n)
    return {
        "n": n,
        "eps": eps,
        "clean_accuracy": float(correct.float().mean()),
        "robust_accuracy": float(robust_all.float().mean()),
        "attacks": per_attack,
        "num_classes": num_classes,
        "batch_size": batch_size,
        "seed": seed,
        "device": str(device),
        "versions": _versions(any(s.kind == "autoattack" for s in specs)),
    }


@torch.no_grad()
def _clean_pass(model, x_all, y_all, batch_size, device):
    """Clean predictions of all points, plus the first-batch checks: logits shape, label
    range (of all points, once the class count is known), sanity warnings."""
    correct = torch.zeros(x_all.shape[0], dtype=torch.bool)
    num_classes = None
    for begin in range(0, x_all.shape[0], batch_size):
        xb = x_all[begin:begin + batch_size].to(device)
        yb = y_all[begin:begin + batch_size].to(device)
        logits = model(xb)
        if not isinstance(logits, torch.Tensor):
            raise TypeError(f"the model must return a tensor of logits [batch, classes], got "
                            f"{type(logits).__name__}")
        if logits.dim() != 2:
            raise ValueError(f"the model must return logits of shape [batch, classes], got "
                             f"shape {tuple(logits.shape)}")
        if num_classes is None:
            num_classes = logits.shape[1]
            check_labels("y", y_all, num_classes)
            sanity.warn_if_probabilities(logits)
            sanity.warn_if_randomized(model, xb, logits)
        correct[begin:begin + xb.shape[0]] = (logits.argmax(dim=1) == yb).cpu()
    return correct, int(num_classes)
