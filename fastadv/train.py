"""train(): the ONE training loop shared by every method (DESIGN.md, layer 2).

    result = fastadv.train(model, "backward_smoothing", fastadv.data.load("digits"), epochs=10,
                           method_options={"eps": 0.2}, run_dir="runs/bs")

The method only defines the loss (fastadv.methods); this loop owns seeding, the optimizer
(SGD momentum 0.9, weight decay 5e-4 by default, as Fast AT / Fast-BAT), the per-iteration LR
schedule (_train_schedules), AMP and channels_last on CUDA, gradient clipping, held-out
validation with PGD-10 (eps/4 steps) and best-checkpoint selection on it (Rice et al., ICML
2020), Fast AT's catastrophic-overfitting guard (_train_guard), atomic checkpoints and exact
resume (checkpoint), the metrics file, the progress bar and timing. Metrics accumulate on
the device and are read once per epoch (_train_metrics).
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import torch
from torch import nn

from fastadv import checkpoint as ckpt
from fastadv import methods as methods_lib
from fastadv import ops
from fastadv._train_data import batch_to_device, prepare
from fastadv._train_eval import clean_and_pgd_accuracy
from fastadv._train_guard import OverfitGuard
from fastadv._train_metrics import EpochMeter, peak_memory_mb
from fastadv._train_schedules import LRSchedule
from fastadv._checks import check_int
from fastadv.models.mode import bn_mode
from fastadv._checks import check_float

AMP_MODES = ("bf16", "fp16")


@dataclasses.dataclass
class TrainResult:
    model: nn.Module
    history: List[dict]
    seconds: float
    best_epoch: Optional[int]
    best_val_robust_accuracy: Optional[float]
    run_dir: Optional[str]
    stopped_early: bool
    config: dict


def _resolve_method(method, options):
    if isinstance(method, str):
        return methods_lib.get(method, **(options or {}))
    if options:
        raise ValueError("method_options applies only when method is given by name; pass the "
                         "hyperparameters to the method instance instead")
    if not callable(getattr(method, "loss", None)):
        raise TypeError(f"method must be a name (one of {methods_lib.available()}) or a method "
                        f"instance with a loss(model, x, y), got {type(method).__name__}")
    return method


def _make_optimizer(optimizer, params, *, lr, momentum, nesterov, weight_decay):
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov,
                               weight_decay=weight_decay)
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer(params, lr=lr)
    if callable(optimizer):
        made = optimizer(params)
        if not isinstance(made, torch.optim.Optimizer):
            raise TypeError(f"optimizer factory returned {type(made).__name__}, not a "
                            "torch.optim.Optimizer")
        return made
    raise ValueError(f"optimizer must be 'sgd', a torch.optim.Optimizer class or a factory "
                     f"params -> optimizer, got {optimizer!r}")


def _amp_setup(amp, device):
    if amp not in (None, False) and amp not in AMP_MODES:
        raise ValueError(f"amp must be None, False or one of {AMP_MODES}, got {amp!r}")
    if device.type != "cuda":
        if amp not in (None, False):
            warnings.warn(f"amp={amp!r} ignored: mixed precision is used on CUDA only")
        return None, None
    if amp is False:
        return None, None
    if amp is None:
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    return dtype, scaler


def _check_model_output(model, x, num_classes, label_sets):
    with torch.no_grad(), bn_mode(model, "eval"):
        out = model(x[:2])
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != min(2, x.shape[0]):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model must return logits of shape [batch, classes]; on a batch "
                         f"of {min(2, x.shape[0])} it returned {shape}")
    classes = out.shape[1]
    if num_classes is not None and classes != num_classes:
        raise ValueError(f"the model outputs {classes} logits but the data has "
                         f"num_classes={num_classes}")
    for name, y in label_sets:
        if y is not None and y.numel() and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise ValueError(f"{name} must lie in [0, {classes}) for a model with {classes} "
                             f"outputs, got labels in [{int(y.min())}, {int(y.max())}]")
    return classes


def _seed_everything(seed):
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)


def _progress(total, enabled, initial):
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, disable=not enabled, unit="batch", leave=False,
                dynamic_ncols=True)


def train(model: nn.Module, method, train_data, *, epochs: int, batch_size: int = 128,
          lr: float = 0.2, schedule: str = "cyclic", peak: float = 0.5, milestones=None,
          lr_decay: float = 0.1, optimizer="sgd", momentum: float = 0.9, nesterov: bool = False,
          weight_decay: float = 5e-4, amp=None, channels_last: Optional[bool] = None,
          grad_clip: Optional[float] = None, seed: int = 0, val_size=0.1, val_data=None,
          val_every: int = 1, val_steps: int = 10, val_eps: Optional[float] = None,
          guard: Optional[bool] = None, guard_threshold: float = 0.2, guard_size: int = 128,
          run_dir=None, resume=None, device=None, progress: Optional[bool] = None,
          callback: Optional[Callable[[dict], object]] = None, method_options: Optional[dict] = None,
          model_spec=None, dataset: Optional[str] = None, restore_best: bool = False) -> TrainResult:
    """Train ``model`` with ``method`` (a name from fastadv.methods.available() with
    ``method_options``, or a method instance) for ``epochs`` epochs.

    train_data: ImageData, DeviceLoader, torch DataLoader or (x, y) tensors (see
    fastadv._train_data). A share ``val_size`` (fraction or count) of splittable data is held
    out; every ``val_every`` epochs clean and PGD-``val_steps`` accuracy (step eps/4, eps =
    ``val_eps`` or the method's eps) are measured on it, and ``best`` is the checkpoint of the
    highest robust accuracy (the last one when there is no validation).
    lr is the peak LR; schedule "cyclic" (peak at fraction ``peak``), "piecewise"
    (``milestones`` in epochs, factor ``lr_decay``), "cosine" or "constant".
    amp: None (bf16 on CUDA, off on CPU), False, "bf16" or "fp16" (with a GradScaler).
    guard: Fast AT's catastrophic-overfitting guard (None: the method's default, on for
    fast_at only). run_dir: where config.json, metrics.jsonl and checkpoints/{last,best}.pt go.
    resume: a run directory or a last.pt path; training continues exactly where it stopped.
    callback(record) runs after each epoch; returning False stops training.
    """
    started = time.perf_counter()
    method = _resolve_method(method, method_options)
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    val_every = check_int("val_every", val_every, minimum=1)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    eps = check_float("val_eps", getattr(method, "eps", 8 / 255) if val_eps is None else val_eps,
                      minimum=0.0, maximum=1.0)
    if grad_clip is not None:
        grad_clip = check_float("grad_clip", grad_clip, strictly_positive=True)
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    model.to(device)
    _seed_everything(seed)

    data = prepare(train_data, batch_size=batch_size, val_size=val_size, val_data=val_data,
                   device=device, seed=seed, guard_size=guard_size)
    labels = [("training labels", getattr(data.loader, "y", None)),
              ("training labels", getattr(data.loader, "labels", None)),
              ("validation labels", data.val[1] if data.val else None),
              ("labels of the first batch", data.guard_batch[1])]
    num_classes = _check_model_output(model, data.guard_batch[0], data.num_classes, labels)
    iterations_per_epoch = len(data.loader)
    if iterations_per_epoch == 0:
        raise ValueError(f"train_data gives no batches of batch_size={batch_size}")

    amp_dtype, scaler = _amp_setup(amp, device)
    if channels_last is None:
        # single-channel images (the bundled digits) gain nothing from channels_last, and their
        # NHWC and NCHW strides differ only in the size-1 channel dimension, which the fused
        # ops' layout checks treat as a mismatch
        channels_last = device.type == "cuda" and data.guard_batch[0].shape[1] > 1
    if channels_last:
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _make_optimizer(optimizer, params, lr=lr, momentum=momentum, nesterov=nesterov,
                          weight_decay=weight_decay)
    sched = LRSchedule(schedule, lr, epochs=epochs, iterations_per_epoch=iterations_per_epoch,
                       peak=peak, milestones=milestones, decay=lr_decay)
    use_guard = getattr(method, "guard_by_default", False) if guard is None else bool(guard)
    overfit_guard = (OverfitGuard(*data.guard_batch, eps=eps, threshold=guard_threshold, seed=seed)
                     if use_guard and eps > 0 else None)

    if model_spec is None:
        model_spec = getattr(model, "spec", None)
    dataset = dataset if dataset is not None else data.dataset
    resolved = method.resolved() if hasattr(method, "resolved") else {"method": repr(method)}
    config = {
        "method": resolved, "epochs": epochs, "batch_size": batch_size, "lr": lr,
        **sched.describe(), "optimizer": optimizer if isinstance(optimizer, str) else repr(optimizer),
        "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay,
        "amp": None if amp_dtype is None else str(amp_dtype).replace("torch.", ""),
        "channels_last": bool(channels_last), "grad_clip": grad_clip, "seed": seed,
        "val_size": val_size, "n_val": data.val[0].shape[0] if data.val else 0,
        "n_train": data.n_train, "val_every": val_every, "val_steps": val_steps, "val_eps": eps,
        "guard": overfit_guard is not None, "guard_threshold": guard_threshold,
        "num_classes": num_classes, "device": str(device), "model_spec": model_spec,
        "dataset": dataset, "torch": str(torch.__version__),
    }
    config = json.loads(json.dumps(config, default=str))  # plain data: loads with weights_only

    history: List[dict] = []
    start_epoch = iteration = 0
    best_metric, best_epoch, best_state = -math.inf, None, None
    stopped = False
    rng_state = None
    if resume is not None:
        state = ckpt.load_checkpoint(resume, which="last", map_location=device)
        missing = [k for k in ("optimizer_state", "iteration", "rng") if k not in state]
        if missing:
            raise ValueError(f"resume={str(resume)!r} is not a resumable checkpoint (it lacks "
                             f"{missing}); pass the run directory or its checkpoints/last.pt")
        previous = (state.get("config") or {}).get("method")
        if isinstance(previous, dict) and previous != resolved:
            warnings.warn(f"resuming a run trained with method {previous} using a different "
                          f"method or hyperparameters {resolved}", stacklevel=2)
        model.load_state_dict(state["model_state"])
        opt.load_state_dict(state["optimizer_state"])
        if scaler is not None and state.get("scaler_state"):
            scaler.load_state_dict(state["scaler_state"])
        start_epoch, iteration = int(state["epoch"]), int(state["iteration"])
        history = list(state.get("history", []))
        best_metric = state.get("best_metric", -math.inf)
        best_epoch = state.get("best_epoch")
        stopped = bool(state.get("stopped", False))
        if overfit_guard is not None and state.get("guard"):
            overfit_guard.load_state_dict(state["guard"])
        rng_state = state["rng"]
        if run_dir is None and Path(resume).is_dir():
            run_dir = resume
    run_path = Path(run_dir) if run_dir is not None else None
    if run_path is not None:
        (run_path / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run_path / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
        # rewritten from the history so that a resumed run never duplicates an epoch's record
        with open(run_path / "metrics.jsonl", "w") as handle:
            for record in history:
                handle.write(json.dumps(record) + "\n")
    if rng_state is not None:
        ckpt.restore_rng(rng_state)  # last: everything above may have drawn random numbers
    if stopped:
        warnings.warn("the resumed run had been stopped by the overfitting guard; not training")

    def snapshot(epoch):
        return {"model_state": model.state_dict(), "model_spec": model_spec, "dataset": dataset,
                "epoch": epoch, "config": config}

    bar = _progress(epochs * iterations_per_epoch, progress, start_epoch * iterations_per_epoch)
    epoch = start_epoch
    while not stopped and epoch < epochs:
        if hasattr(data.loader, "set_epoch"):
            data.loader.set_epoch(epoch)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        model.train()
        meter = EpochMeter(device)
        epoch_start = time.perf_counter()
        lr_now = sched(iteration)
        for batch in data.loader:
            x, y = batch_to_device(batch, device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            lr_now = sched(iteration)
            for group in opt.param_groups:
                group["lr"] = lr_now
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp_dtype,
                                              enabled=amp_dtype is not None):
                out = method.loss(model, x, y)
            if out.loss.dim() != 0:
                raise ValueError(f"method {resolved.get('method')} returned a loss of shape "
                                 f"{tuple(out.loss.shape)}; it must be a scalar")
            if scaler is not None:
                scaler.scale(out.loss).backward()
                if grad_clip is not None:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(params, grad_clip)
                scaler.step(opt)
                scaler.update()
            else:
                out.loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, grad_clip)
                opt.step()
            meter.update(x.shape[0], out.loss, out.logits, y, out.metrics)
            iteration += 1
            bar.update(1)
        opt.zero_grad(set_to_none=True)
        record = {"epoch": epoch + 1, "lr": lr_now, **meter.read()}
        seconds = time.perf_counter() - epoch_start
        record.update(seconds=seconds, images_per_second=meter.count / max(seconds, 1e-9),
                      peak_memory_mb=peak_memory_mb(device))
        if data.val is not None and ((epoch + 1) % val_every == 0 or epoch + 1 == epochs):
            clean, robust = clean_and_pgd_accuracy(model, *data.val, eps=eps, steps=val_steps,
                                                   seed=seed)
            record.update(val_clean_accuracy=clean, val_robust_accuracy=robust)
        if overfit_guard is not None:
            accuracy, triggered = overfit_guard.check(model)
            record.update(guard_robust_accuracy=accuracy, guard_triggered=triggered)
            stopped = triggered
        # best: highest validation robust accuracy; without validation, the latest weights
        # (after a guard stop those are the previous epoch's, already saved as best)
        if data.val is None:
            improved = not stopped
            metric = float(epoch + 1)
        else:
            metric = record.get("val_robust_accuracy", -math.inf)
            # ties (common early on, when robust accuracy is still 0) go to higher clean accuracy
            best_clean = next((r.get("val_clean_accuracy", -math.inf) for r in history
                               if r["epoch"] == best_epoch), -math.inf)
            improved = metric > best_metric or (
                metric == best_metric and record.get("val_clean_accuracy", -math.inf) > best_clean)
        if improved:
            best_metric, best_epoch = metric, epoch + 1
        record["best_epoch"] = best_epoch
        history.append(record)
        bar.set_postfix(epoch=epoch + 1, loss=f"{record.get('train_loss', float('nan')):.3f}")
        epoch += 1
        if run_path is not None:
            with open(run_path / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            if improved:
                ckpt.save_atomic({**snapshot(epoch), "best_metric": best_metric},
                                 run_path / "checkpoints" / "best.pt")
            last = {**snapshot(epoch), "optimizer_state": opt.state_dict(),
                    "scaler_state": scaler.state_dict() if scaler is not None else None,
                    "iteration": iteration, "rng": ckpt.capture_rng(), "history": history,
                    "best_metric": best_metric, "best_epoch": best_epoch, "stopped": stopped,
                    "guard": overfit_guard.state_dict() if overfit_guard is not None else None,
                    "loader_epoch": epoch}
            ckpt.save_atomic(last, run_path / "checkpoints" / "last.pt")
        if improved and restore_best:
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if callback is not None and callback(record) is False:
            stopped = True
    bar.close()
    if restore_best:
        if best_state is not None:
            model.load_state_dict(best_state)
        elif run_path is not None and (run_path / "checkpoints" / "best.pt").is_file():
            model.load_state_dict(ckpt.load_checkpoint(run_path, which="best",
                                                       map_location=device)["model_state"])
    return TrainResult(model=model, history=history, seconds=time.perf_counter() - started,
                       best_epoch=best_epoch,
                       best_val_robust_accuracy=best_metric if data.val is not None and
                       math.isfinite(best_metric) else None,
                       run_dir=str(run_path) if run_path is not None else None,
                       stopped_early=stopped and epoch < epochs, config=config)
