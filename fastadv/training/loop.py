"""train(): the ONE training loop shared by every method (DESIGN.md, layer 2).

    result = fastadv.train(model, "backward_smoothing", fastadv.data.load("digits"), epochs=10,
                           method_options={"eps": 0.2}, run_dir="runs/bs")

The method only defines the loss (fastadv.methods). The loop reads top to bottom: settle the
method, device and data; build the run's parts (precision, optimizer, schedule, validation,
guard, run state); resume; then per epoch the batch loop, validation, the guard, and the
checkpoints. Each part lives in its own module of this package.
"""
from __future__ import annotations

import dataclasses
import json
import time
from typing import Callable, List, Optional

import torch
from torch import nn

from fastadv._checks import check_eps, check_float, check_int, check_module
from fastadv.training.compiled import StepOptions, TrainingStep
from fastadv.training.data import batch_to_device, prepare
from fastadv.training.distributed import Ranks, explains_rank_failures
from fastadv.training.guard import OverfitGuard, as_guard
from fastadv.training.metrics import EpochMeter, peak_memory_mb
from fastadv.training.optimizer import make_optimizer
from fastadv.training.precision import Precision
from fastadv.training.progress import progress_bar
from fastadv.training.run_lock import releases_run_locks
from fastadv.training.run_state import RunState
from fastadv.training.schedules import as_schedule
from fastadv.training.setup import (check_model_output, resolve_device, resolve_method,
                                    seed_everything)
from fastadv.training.validation import BestTracker, Validation, clean_and_pgd_accuracy


@dataclasses.dataclass
class TrainResult:
    """What train() returns: the trained model (the last epoch's weights), the per-epoch
    records, wall time, the best epoch and its validation robust accuracy, the run directory,
    whether the guard or the callback stopped training early, and the run's config."""
    model: nn.Module
    history: List[dict]
    seconds: float
    best_epoch: Optional[int]
    best_val_robust_accuracy: Optional[float]
    run_dir: Optional[str]
    stopped_early: bool
    config: dict


@releases_run_locks  # the run directory's lock is released however train() ends
@explains_rank_failures  # a dead or silent rank: an error naming it, never a hang
def train(model: nn.Module, method, train_data, *, epochs: int, batch_size: int = 128,
          lr: float = 0.2, schedule="cyclic", optimizer="sgd", amp=None,
          channels_last: Optional[bool] = None, grad_clip: Optional[float] = None,
          compile=False, cuda_graphs: bool = False,
          seed: int = 0, val_size=0.1, val_data=None, validation: Optional[Validation] = None,
          guard=None, run_dir=None, resume=None, device=None, progress: Optional[bool] = None,
          overwrite: bool = False, distributed: Optional[bool] = None, sync_bn: bool = False,
          callback: Optional[Callable[[dict], object]] = None,
          method_options: Optional[dict] = None, dataset: Optional[str] = None) -> TrainResult:
    """Train ``model`` with ``method`` for ``epochs`` epochs; returns a :class:`TrainResult`.

    model: an nn.Module taking images in [0, 1] (fastadv.models normalize inside).
    method: a name of fastadv.methods.available() (hyperparameters in ``method_options``) or
        a method instance.
    train_data: ImageData, DeviceLoader, torch DataLoader or (x, y) tensors (training.data);
        images (N, C, H, W), uint8 or float in [0, 1] (float64/float16 are cast to float32); a
        loader's batches are (x, y) or dicts with "x"/"image"/"images" and "y"/"label"/"labels".
    batch_size: images per step on each rank (the global batch is world_size x batch_size).
    lr: the peak learning rate of the schedule.
    schedule: "cyclic" (default), "piecewise", "cosine", "constant", or a
        fastadv.training.Schedule with its knobs (peak, milestones, decay); stepped per batch.
    optimizer: "sgd" (momentum 0.9, weight decay 5e-4), an Optimizer class or a factory.
    amp: None (bf16 on CUDA, off on CPU), False, "bf16" or "fp16" (with a GradScaler).
    channels_last: None = on CUDA for images with more than one channel.
    grad_clip: max norm of the parameter gradient (None: no clipping).
    compile: False, True, a torch.compile mode or a dict of torch.compile arguments (e.g.
        {"backend": "aot_eager"}): the model's passes run compiled, those a method
        differentiates twice eagerly. cuda_graphs (or compile="reduce-overhead"): on CUDA
        the whole step is one CUDA graph. See fastadv.training.compiled.
    seed: seeds shuffles, augmentation, random starts, noise and the validation attack.
    val_size: a float share in (0, 1) or an int count of splittable training data held out for
        validation; val_data: an explicit validation set instead.
    validation: a fastadv.training.Validation (every, steps, eps); default PGD-10 every epoch
        at the method's eps. The best checkpoint is the one of the highest robust accuracy.
    guard: Fast AT's catastrophic-overfitting guard: None (the method's default, on for
        fast_at), True/False, or a fastadv.training.Guard(threshold, size).
    run_dir: where config.json, metrics.jsonl and checkpoints/{last,best}.pt go (None: none).
    resume: a run directory or last.pt; training continues exactly where it stopped.
    overwrite: a fresh run refuses a run_dir that holds a run, unless overwrite=True: then
        that run's files are deleted first. A run_dir is locked while a run uses it.
    device: None = the model's device; one that does not exist is a ValueError.
    progress: None = a bar on a terminal, else one line per epoch on stderr; False = silent.
    callback(record) runs after each epoch; returning False stops training.
    distributed: None = DDP when launched by torchrun or a process group is initialised;
        True/False. Rank 0 alone writes; see fastadv.training.distributed. sync_bn:
        SyncBatchNorm across ranks (CUDA only).
    dataset: the data set's name for the checkpoint (default: the data's own name).
    """
    started = time.perf_counter()
    method = resolve_method(method, method_options)
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    lr = check_float("lr", lr, strictly_positive=True)
    check_module("model", model)
    validation = validation if validation is not None else Validation()
    eps = check_eps(getattr(method, "eps", 8 / 255) if validation.eps is None else validation.eps,
                    "validation.eps")
    guard_config = as_guard(guard, method)
    ranks = Ranks.setup(distributed, resolve_device(device, model), sync_bn=sync_bn)
    device = ranks.device  # this rank's device (cuda:LOCAL_RANK under torchrun)
    model.to(device)
    seed_everything(seed)

    data = prepare(train_data, batch_size=batch_size, val_size=val_size, val_data=val_data,
                   device=device, seed=seed,
                   guard_size=guard_config.size if guard_config else 128)
    # the labels are checked on the whole source, before each rank keeps its share
    num_classes = check_model_output(model, data.guard_batch[0], data.num_classes,
                                     data.label_sets())
    data.num_classes = num_classes
    data.loader = ranks.shard(data.loader, batch_size, seed)  # this rank's share
    iterations_per_epoch = len(data.loader)
    if iterations_per_epoch == 0:
        raise ValueError(f"train_data gives no batches of batch_size={batch_size}")

    precision = Precision(amp, channels_last, device, data.guard_batch[0].shape[1], grad_clip)
    precision.prepare_model(model)
    step_options = StepOptions.resolve(compile, cuda_graphs, device)
    model, step_model = ranks.wrap(model, method)  # step_model: DDP in a distributed run
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(optimizer, params, lr)
    sched = as_schedule(schedule).bind(lr, epochs=epochs, iterations_per_epoch=iterations_per_epoch)
    overfit_guard = (OverfitGuard(*data.guard_batch, eps=eps, threshold=guard_config.threshold,
                                  seed=seed) if guard_config is not None and eps > 0 else None)
    best = BestTracker(validated=data.val is not None)
    resolved = method.resolved() if hasattr(method, "resolved") else {"method": repr(method)}
    config = {
        "method": resolved, "epochs": epochs, "batch_size": batch_size, **sched.describe(),
        "optimizer": optimizer if isinstance(optimizer, str) else repr(optimizer),
        **precision.describe(), **step_options.describe(), "seed": seed,
        "val_size": val_size, "n_val": data.n_val,
        "n_train": data.n_train, "validation": dataclasses.asdict(validation), "val_eps": eps,
        "guard": dataclasses.asdict(guard_config) if overfit_guard is not None else None,
        "num_classes": num_classes, "device": str(device),
        "model_spec": getattr(model, "spec", None), "dataset": dataset or data.dataset,
        "torch": str(torch.__version__), "threads": torch.get_num_threads(),
        **ranks.describe(),
    }
    config = json.loads(json.dumps(config, default=str))  # plain data: loads with weights_only
    ranks.check_same(config)
    run = ranks.together(RunState, run_dir if ranks.writes else None, config,
                         model_spec=config["model_spec"], dataset=config["dataset"],
                         overwrite=overwrite, writes=ranks.writes)
    if resume is not None:
        ranks.together(run.resume, resume, model=model, optimizer=opt, precision=precision,
                       best=best, guard=overfit_guard, device=device)
    ranks.together(run.start)  # rank 0 claims the run directory and writes its first files
    step = TrainingStep(method, step_model, opt, params, precision, step_options)

    with progress_bar(epochs, iterations_per_epoch, progress if ranks.writes else False,
                      first_epoch=run.epoch, method_name=resolved.get("method")) as bar:
        while not run.stopped and run.epoch < epochs:
            if hasattr(data.loader, "set_epoch"):
                data.loader.set_epoch(run.epoch)
            ranks.seed_epoch(seed, run.epoch)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            model.train()
            meter = EpochMeter(device)
            epoch_start = time.perf_counter()
            for index, batch in enumerate(data.loader):
                x, y = batch_to_device(batch, device, index=index, num_classes=num_classes,
                                       check=data.check_batches)
                x = precision.prepare_batch(x)
                # LR, zero_grad, loss, backward, update
                out = step(x, y, sched(run.iteration))
                meter.update(x.shape[0], out.loss, out.logits, y, out.metrics)
                run.iteration += 1
                bar.update(1)
            opt.zero_grad(set_to_none=True)
            ranks.sync_buffers(model)  # rank 0's batch-norm statistics on every rank
            seconds = time.perf_counter() - epoch_start
            record = {"epoch": run.epoch + 1, "lr": sched(run.iteration - 1),
                      **ranks.average(meter.read()),  # the mean over ranks
                      "seconds": seconds, "images_per_second": meter.count / max(seconds, 1e-9),
                      "peak_memory_mb": peak_memory_mb(device)}
            if data.val is not None and validation.due(run.epoch + 1, epochs):
                clean, robust = ranks.sharded_accuracy(clean_and_pgd_accuracy, model, *data.val,
                                                       eps=eps, steps=validation.steps, seed=seed)
                record.update(val_clean_accuracy=clean, val_robust_accuracy=robust)
            if overfit_guard is not None:
                accuracy, run.stopped = ranks.guard_check(overfit_guard, model)
                record.update(guard_robust_accuracy=accuracy, guard_triggered=run.stopped)
            improved = best.update(record, run.stopped)
            record["best_epoch"] = best.epoch
            bar.epoch_done(record)  # the epoch's summary line
            ranks.together(run.finish_epoch, record, improved=improved, model=model,
                           optimizer=opt, precision=precision, best=best,
                           guard=overfit_guard)  # rank 0 writes the checkpoints
            if callback is not None and ranks.decide(callback(record) is False):
                run.stopped = True
    ranks.barrier()  # every rank returns after rank 0's last write
    return TrainResult(model=model, history=run.history, seconds=time.perf_counter() - started,
                       best_epoch=best.epoch, best_val_robust_accuracy=best.robust_accuracy,
                       run_dir=run.run_dir, stopped_early=run.stopped and run.epoch < epochs,
                       config=config)
