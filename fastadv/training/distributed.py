"""Training on several GPUs and nodes with PyTorch's own engine: a torch.distributed process
group and DistributedDataParallel (DDP), one process per device, launched by torchrun.

    torchrun --nproc_per_node 8 -m fastadv train --dataset cifar10 ...

train() asks this module, in this order (each a no-op in a one-process run):
- :meth:`Ranks.setup`: is the run distributed (torchrun's RANK / WORLD_SIZE / LOCAL_RANK in
  the environment, a process group the caller initialised, or ``distributed=True``)? The
  process group is initialised here unless the caller did it: nccl on CUDA, gloo on CPU, with
  a timeout of FASTADV_DIST_TIMEOUT seconds (default 600), so a rank that died or hangs makes
  the others fail with an error instead of waiting forever. A group started here stays up
  for later calls and is destroyed when the process exits. Each rank runs on its local
  device: every CUDA device becomes cuda:LOCAL_RANK.
- :meth:`Ranks.shard`: each rank's share of the training data. Device-resident sources
  (tensors, ImageData, DeviceLoader) are batched at the global batch (world_size x batch_size)
  with the shuffle and augmentation drawn from the run's seed, the same on every rank, and
  each rank keeps its slice of each global batch: the ranks together see exactly the batches
  of a one-process run at the global batch size. A torch DataLoader gets a
  DistributedSampler seeded with the run's seed; both reshuffle every epoch (set_epoch).
- :meth:`Ranks.wrap`: optional SyncBatchNorm, then DDP.
- per epoch: per-rank seeds (:meth:`seed_epoch`), metrics averaged over ranks, validation
  sharded and all-reduced, the guard's verdict and the callback's stop decided on rank 0 and
  broadcast, so that every rank takes the same decisions; only rank 0 writes (``writes``).

Why the methods run unchanged on the DDP module, attack passes included: DDP all-reduces a
parameter's gradient from a hook on that parameter's gradient accumulator, which fires only
when a backward accumulates into ``.grad``. The attack passes take torch.autograd.grad with
respect to the input (Fast-BAT's step 6 also w.r.t. the parameters, but autograd.grad never
accumulates), so they fire no hook and start no all-reduce; every DDP forward only re-arms
the reducer for the one backward the loop runs. That backward accumulates, for each
parameter, the sum of every path into the loss (TRADES' two forwards, GradAlign's double
backward through g2, Fast-BAT's linear term and its double backward through g_z) and fires
the hook once: each gradient bucket is all-reduced exactly once per step, averaged over ranks.
With DDP's default broadcast_buffers, each DDP forward first copies rank 0's batch-norm
buffers to every rank, so eval-mode attack passes normalise with the same statistics on all
ranks and the running statistics are those rank 0 tracks on its shard.
"""
from __future__ import annotations

import atexit
import contextlib
import copy
import datetime
import functools
import io
import json
import os
import warnings
import zlib
from typing import Callable, Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import (DataLoader, DistributedSampler, IterableDataset, RandomSampler,
                              SequentialSampler)

from fastadv._checks import check_bool, check_float, check_optional_bool
from fastadv._seeds import mix_seed
from fastadv.data import DeviceLoader
from fastadv.training.data import TensorBatches
from fastadv.training.setup import seed_everything

TIMEOUT_ENV = "FASTADV_DIST_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 600
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# config keys that differ between ranks by design: not compared across ranks
RANK_LOCAL_KEYS = ("device", "threads")
# methods whose create_graph pass runs in the method's bn_mode: SyncBatchNorm's backward is
# not twice differentiable, so with sync_bn those passes need bn_mode="eval"
DOUBLE_BACKWARD_METHODS = ("fast_bat", "grad_align")


def launched_by_torchrun() -> bool:
    """Whether torchrun (or a launcher setting the same variables) started this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def timeout_seconds() -> float:
    """The process group's timeout: FASTADV_DIST_TIMEOUT seconds, default 600."""
    text = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_SECONDS))
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds, got {text!r}") from None
    return check_float(TIMEOUT_ENV, value, strictly_positive=True)


def local_device(device) -> torch.device:
    """``device`` for this rank: under torchrun a CUDA device becomes cuda:LOCAL_RANK (made
    the current device, as nccl needs); without LOCAL_RANK (the caller started the process
    group) a CUDA device keeps its index; CPU stays CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return device
    if "LOCAL_RANK" in os.environ:
        index = int(os.environ["LOCAL_RANK"])
        if index >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={index} but this node has "
                             f"{torch.cuda.device_count()} CUDA device(s); start at most that "
                             f"many processes per node (torchrun --nproc_per_node)")
    else:
        index = device.index if device.index is not None else torch.cuda.current_device()
    device = torch.device("cuda", index)
    torch.cuda.set_device(device)
    return device


def init_process_group(device: torch.device) -> None:
    """Initialise the default process group from torchrun's environment, unless one exists:
    nccl for CUDA devices, gloo for CPU, with :func:`timeout_seconds`."""
    if dist.is_initialized():
        if dist.get_backend() == "nccl" and device.type != "cuda":
            raise ValueError(f"the process group uses nccl, which needs CUDA tensors, but the "
                             f"run's device is {device}; use gloo for CPU runs")
        return
    missing = [name for name in TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise ValueError(f"distributed=True but no process group is initialised and the "
                         f"environment lacks {missing}: launch with torchrun (torchrun "
                         f"--nproc_per_node N script.py) or call "
                         f"torch.distributed.init_process_group() first")
    backend = "nccl" if device.type == "cuda" else "gloo"
    options = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_seconds()),
                            **options)
    # the group stays up for the caller's later train()/evaluate() calls and collectives, and
    # is destroyed when the process exits, as torch asks of every program (nccl warns of
    # pending work otherwise); a group the caller initialised is the caller's to destroy
    atexit.register(_destroy_at_exit, dist.group.WORLD)


def _destroy_at_exit(group) -> None:
    # only the group started here, if it is still the default one (neither destroyed by the
    # caller or command_session, nor replaced by one of the caller's own)
    if dist.is_initialized() and dist.group.WORLD is group:
        dist.destroy_process_group()


def join(device) -> torch.device:
    """For the command line: under torchrun, initialise the process group and return this
    rank's device; otherwise ``device`` unchanged."""
    device = torch.device(device)
    if not launched_by_torchrun():
        return device
    device = local_device(device)
    init_process_group(device)
    return device


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """Rank 0 of a distributed run, or the one process of a plain run: the one that writes."""
    return not is_distributed() or dist.get_rank() == 0


def agree(value):
    """Rank 0's ``value`` on every rank (picklable values; ``value`` itself when not
    distributed)."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


@contextlib.contextmanager
def command_session():
    """Around a command-line subcommand: ranks other than 0 print nothing to stdout (the
    command's output appears once), and a process group the command used is destroyed at
    the end. Usable as a decorator."""
    quiet = launched_by_torchrun() and os.environ.get("RANK", "0") != "0"
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        try:
            yield
        finally:
            if is_distributed():
                dist.destroy_process_group()


def _is_collective_failure(exc: BaseException) -> bool:
    # torch raises DistError subclasses for most failures, but gloo's transport reports a
    # peer that closed its connection as a plain RuntimeError naming gloo
    return isinstance(exc, dist.DistError) or (
        isinstance(exc, RuntimeError) and any(name in str(exc) for name in ("gloo", "NCCL")))


def explains_rank_failures(function: Callable) -> Callable:
    """Decorate train(): a failed collective (a rank died, or did not answer within the
    process group's timeout) is re-raised naming this rank and what to look for."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except RuntimeError as exc:
            if not _is_collective_failure(exc):
                raise
            where = (f"rank {dist.get_rank()} of {dist.get_world_size()}"
                     if is_distributed() else "this rank")
            raise RuntimeError(
                f"{where}: a collective operation with the other ranks failed: another rank "
                f"died (see its log) or did not answer within the process group timeout "
                f"({TIMEOUT_ENV}, default {DEFAULT_TIMEOUT_SECONDS} s). Cause: {exc}") from exc
    return wrapper


class RankSlice:
    """This rank's rows of each global batch of ``loader``, a loader batched at
    world_size x the per-rank batch: each rank draws the same global batch (shuffle and
    augmentation) and keeps rows [rank * b, (rank + 1) * b)."""

    def __init__(self, loader, rank: int, world_size: int):
        self.loader, self.rank, self.world_size = loader, rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            share = x.shape[0] // self.world_size
            rows = slice(self.rank * share, (self.rank + 1) * share)
            yield x[rows], y[rows]


class EpochSampled:
    """A DataLoader with a DistributedSampler, reshuffled per epoch via set_epoch."""

    def __init__(self, loader: DataLoader):
        self.loader = loader

    def set_epoch(self, epoch: int) -> None:
        self.loader.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)


def _too_few(n: int, world_size: int, batch_size: int) -> ValueError:
    return ValueError(f"train_data has {n} examples, fewer than one global batch of "
                      f"world_size={world_size} ranks x batch_size={batch_size} per rank = "
                      f"{world_size * batch_size}; lower batch_size or start fewer ranks")


def _global_batches(loader, world_size: int, device: torch.device):
    """The same loader (TensorBatches or DeviceLoader), batched at world_size x its batch."""
    images = loader.x if isinstance(loader, TensorBatches) else loader.images
    if images.shape[0] < world_size * loader.batch_size:
        raise _too_few(images.shape[0], world_size, loader.batch_size)
    if images.device != device:
        raise ValueError(f"the DeviceLoader holds its images on {images.device} but this rank "
                         f"runs on {device}: build it with device={str(device)!r} on each "
                         f"rank, or pass the ImageData")
    wide = copy.copy(loader)  # shares the data on the device: only the batch size differs
    wide.batch_size = loader.batch_size * world_size
    return wide


def _sampled(loader: DataLoader, rank: int, world_size: int, seed: int) -> EpochSampled:
    """``loader`` rebuilt with a DistributedSampler (shuffled if the loader shuffled)."""
    if isinstance(loader.sampler, DistributedSampler):  # the caller sharded it already
        return EpochSampled(loader)
    if isinstance(loader.dataset, IterableDataset) or loader.batch_size is None or \
            not isinstance(loader.sampler, (RandomSampler, SequentialSampler)):
        raise ValueError("cannot shard this DataLoader over the ranks (an IterableDataset, a "
                         "batch_sampler or a custom sampler); give it a "
                         "torch.utils.data.DistributedSampler yourself")
    n = len(loader.dataset)
    if n < world_size * loader.batch_size:
        raise _too_few(n, world_size, loader.batch_size)
    sampler = DistributedSampler(loader.dataset, num_replicas=world_size, rank=rank,
                                 shuffle=isinstance(loader.sampler, RandomSampler), seed=seed,
                                 drop_last=loader.drop_last)
    options = {name: getattr(loader, name) for name in (
        "num_workers", "collate_fn", "pin_memory", "drop_last", "timeout", "worker_init_fn",
        "multiprocessing_context", "generator", "prefetch_factor", "persistent_workers",
        "pin_memory_device", "in_order") if hasattr(loader, name)}
    return EpochSampled(DataLoader(loader.dataset, batch_size=loader.batch_size,
                                   sampler=sampler, **options))


def _error_kind(error: Exception) -> type:
    """What the other ranks raise for ``error``: a user's ValueError or TypeError (or a
    subclass, e.g. a JSONDecodeError) as such, anything else as a RuntimeError."""
    return next((kind for kind in (ValueError, TypeError) if isinstance(error, kind)),
                RuntimeError)


class BufferSyncedDDP(DistributedDataParallel):
    """DistributedDataParallel whose broadcast of rank 0's buffers before each forward keeps
    their autograd version counters, as torch 2.13's own DDP does and 2.11's does not. A
    method runs several forwards per step on the DDP module, and the graph of an earlier one
    can hold the batch-norm statistics (an eval-mode pass saves them, so does a create_graph
    backward): with the counters bumped by the next forward's broadcast, the step's backward
    refused to run ("modified by an inplace operation") on torch 2.11 for TRADES, Backward
    Smoothing, Fast-BAT and GradAlign. The values are those torch 2.13 computes.
    (``_sync_buffers`` is DDP's own hook point, private; tests check it is still called.)"""

    @torch.compiler.disable  # torch's own _sync_buffers is not traced either
    def _sync_buffers(self):
        self._assign_modules_buffers()  # the buffers as DDP's own sync will find them
        with torch.autograd._unsafe_preserve_version_counter(tuple(self.modules_buffers)):
            super()._sync_buffers()


class Ranks:
    """The processes of a run and what they must agree on. A one-process run has one rank
    and every method is a no-op, so train() reads the same with or without DDP."""

    def __init__(self, device: torch.device, *, active: bool = False, sync_bn: bool = False):
        self.device, self.active, self.sync_bn = device, active, sync_bn
        self.rank = dist.get_rank() if active else 0
        self.world_size = dist.get_world_size() if active else 1
        self.global_batch_size: Optional[int] = None

    @classmethod
    def setup(cls, distributed: Optional[bool], device, *, sync_bn: bool = False) -> "Ranks":
        """distributed: None = when launched by torchrun or a process group exists; True =
        required; False = never. sync_bn: convert batch norm to SyncBatchNorm (CUDA only)."""
        check_optional_bool("distributed", distributed)
        check_bool("sync_bn", sync_bn)
        if distributed is None:
            distributed = dist.is_available() and (dist.is_initialized() or
                                                   launched_by_torchrun())
        device = torch.device(device)
        if not distributed:
            if sync_bn:
                raise ValueError("sync_bn=True applies to distributed runs only (torchrun, or "
                                 "distributed=True)")
            return cls(device)
        if not dist.is_available():
            raise ValueError("distributed=True but this torch build has no torch.distributed")
        device = local_device(device)
        init_process_group(device)
        return cls(device, active=True, sync_bn=sync_bn)

    @property
    def writes(self) -> bool:
        """Whether this rank writes the run directory and shows the progress bar: rank 0."""
        return self.rank == 0

    def shard(self, loader, batch_size: int, seed: int):
        """This rank's share of the training batches (see the module docstring)."""
        self.global_batch_size = getattr(loader, "batch_size", None) or batch_size
        if not self.active:
            return loader
        self.global_batch_size *= self.world_size
        if isinstance(loader, (TensorBatches, DeviceLoader)):
            wide = _global_batches(loader, self.world_size, self.device)
            return RankSlice(wide, self.rank, self.world_size)
        if isinstance(loader, DataLoader):
            return _sampled(loader, self.rank, self.world_size, seed)
        lengths = [None] * self.world_size
        dist.all_gather_object(lengths, len(loader) if hasattr(loader, "__len__") else None)
        if len(set(lengths)) > 1:
            raise ValueError(f"train_data gives a different number of batches on each rank "
                             f"({lengths}); every rank must run the same number of steps")
        if self.writes:
            warnings.warn(f"train_data is a {type(loader).__name__}, which fastadv cannot "
                          f"shard: each rank trains on the batches its own copy yields",
                          stacklevel=3)
        self.global_batch_size = None
        return loader

    def wrap(self, model: nn.Module, method) -> Tuple[nn.Module, nn.Module]:
        """(model, the module the method's loss runs on): the model itself in a one-process
        run; with DDP, the (SyncBatchNorm-converted) model and its DDP wrapper."""
        if not self.active:
            return model, model
        if isinstance(model, (DistributedDataParallel, nn.DataParallel)):
            raise ValueError(f"model is already wrapped in {type(model).__name__}; pass the "
                             f"bare module (model.module): train() wraps it in "
                             f"DistributedDataParallel itself")
        if self.sync_bn:
            if self.device.type != "cuda":
                raise ValueError(f"sync_bn=True needs CUDA devices (SyncBatchNorm has no CPU "
                                 f"implementation), the run's device is {self.device}")
            if getattr(method, "name", None) in DOUBLE_BACKWARD_METHODS and \
                    getattr(method, "bn_mode", None) == "train":
                raise ValueError(f"sync_bn=True with {method.name} in bn_mode='train': its "
                                 f"create_graph pass would differentiate SyncBatchNorm's "
                                 f"backward twice, which torch does not support; pass "
                                 f"bn_mode='eval' or sync_bn=False")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return model, BufferSyncedDDP(model, device_ids=ids)

    def describe(self) -> dict:
        """What the config records of the ranks."""
        return {"world_size": self.world_size, "global_batch_size": self.global_batch_size,
                "sync_bn": self.sync_bn}

    def check_same(self, config: dict) -> None:
        """Raise ValueError on every rank if the ranks' configs differ (a hash per key,
        all-gathered)."""
        if not self.active:
            return
        digest = {key: zlib.crc32(json.dumps(value, sort_keys=True, default=str).encode())
                  for key, value in config.items() if key not in RANK_LOCAL_KEYS}
        everyone = [None] * self.world_size
        dist.all_gather_object(everyone, digest)
        differing = sorted({key for other in everyone for key in set(other) | set(digest)
                            if other.get(key) != everyone[0].get(key)})
        if differing:
            ranks = [r for r, other in enumerate(everyone) if other != everyone[0]]
            raise ValueError(f"the ranks were given different training settings: {differing} "
                             f"differ between rank 0 and rank(s) {ranks}; every rank must call "
                             f"train() with the same arguments and data")

    def seed_epoch(self, seed: int, epoch: int) -> None:
        """Seed each rank's random starts and noise from (seed, rank, epoch): different on
        each rank, and the same after a resume at that epoch."""
        if self.active:
            seed_everything(mix_seed(0, seed, self.rank, epoch))

    def _tensor(self, values) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64, device=self.device)

    def average(self, metrics: dict) -> dict:
        """The mean over ranks of each metric (every rank runs as many equal batches)."""
        if not self.active or not metrics:
            return metrics
        values = self._tensor(list(metrics.values()))
        dist.all_reduce(values)
        return dict(zip(metrics, (values / self.world_size).tolist()))

    def sync_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (batch-norm statistics) on every rank."""
        if self.active:
            for buffer in model.buffers():
                dist.broadcast(buffer, 0)

    def sharded_accuracy(self, measure: Callable, model, x, y, **options):
        """``measure(model, x, y, **options)`` -> (clean, robust) accuracies, each rank on its
        contiguous share of (x, y), the correct counts all-reduced (the ranks must hold the
        same model: :meth:`sync_buffers` first)."""
        if not self.active:
            return measure(model, x, y, **options)
        part = torch.tensor_split(torch.arange(x.shape[0], device=x.device),
                                  self.world_size)[self.rank]
        counts = self._tensor([0.0, 0.0])
        if part.numel():
            accuracies = measure(model, x[part], y[part], **options)
            counts = self._tensor([a * part.numel() for a in accuracies]).round()
        dist.all_reduce(counts)
        return tuple((counts / x.shape[0]).tolist())

    def guard_check(self, guard, model) -> Tuple[float, bool]:
        """The overfitting guard's (accuracy, triggered), computed on rank 0 and broadcast;
        when it triggers, every rank takes rank 0's restored weights."""
        if not self.active:
            return guard.check(model)
        accuracy, triggered = self.decide(
            self.together(lambda: guard.check(model) if self.writes else None))
        if triggered:
            for tensor in model.state_dict().values():
                dist.broadcast(tensor, 0)
        return accuracy, triggered

    def decide(self, value):
        """Rank 0's ``value`` on every rank: one decision for all."""
        return agree(value) if self.active else value

    def together(self, function: Callable, *args, **kwargs):
        """``function(*args, **kwargs)`` on every rank, failing on every rank if it failed on
        one: the failing rank raises its own exception, the others the same kind for a
        ValueError or TypeError (a refused run directory, a bad checkpoint) and otherwise a
        RuntimeError, each naming the rank and its error. For the parts only rank 0 works on
        (the run directory, the guard): without it the other ranks would wait for rank 0 in
        their next collective until the process group's timeout."""
        if not self.active:
            return function(*args, **kwargs)
        error = result = None
        try:
            result = function(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001  (told to every rank, then re-raised)
            error = exc
        reports = [None] * self.world_size
        dist.all_gather_object(reports, None if error is None else
                               (_error_kind(error), f"{type(error).__name__}: {error}"))
        if error is not None:
            raise error
        for rank, report in enumerate(reports):
            if report is not None:
                kind, text = report
                raise kind(f"rank {rank} of {self.world_size} failed, so rank {self.rank} "
                           f"stops too: {text}")
        return result

    def barrier(self) -> None:
        """Wait for every rank (rank 0's last checkpoint is written when this returns)."""
        if self.active:
            dist.barrier()
