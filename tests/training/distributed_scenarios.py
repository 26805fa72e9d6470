"""What each of the two ranks runs for tests/training/test_distributed.py (started by
tests/ranks.py). Every scenario returns plain data or tensors; the test compares them across
ranks and with one-process runs, using the settings defined here."""
import contextlib
import copy
import os
import time
import warnings

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

import fastadv
from fastadv import methods, ops
from fastadv.training.distributed import Ranks
from tests.training import resume_script
from tests.training.helpers import tiny_data, tiny_model

EPS = 0.1
# every method, with the settings that keep 2 steps of a tiny model quick; gamma=0 turns off
# Backward Smoothing's logit noise (its only randomness besides none: it has no start)
OPTIONS = {name: {"eps": EPS} for name in methods.available()}
OPTIONS["backward_smoothing"]["gamma"] = 0.0
OPTIONS["pgd_at"]["steps"] = 3
OPTIONS["trades"]["steps"] = 3
TRAIN = dict(epochs=1, lr=0.05, schedule="constant", progress=False, val_size=0, guard=False)
PER_RANK_BATCH = 8


def plain_model():
    """A tiny CNN without batch norm: a 2-rank step then equals a one-process step."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 6 * 6, 3))


@contextlib.contextmanager
def zero_starts():
    """Every method's random start (and GradAlign's noisy point) at x itself: runs become
    deterministic, so a 2-rank run can equal a one-process run exactly."""
    original = ops.random_start
    ops.random_start = lambda x, eps, **kwargs: x.detach().clone()
    try:
        yield
    finally:
        ops.random_start = original


def rank_batches(rank):
    """Two batches of data only this rank holds."""
    x, y = tiny_data(n=2 * PER_RANK_BATCH, seed=100 + rank)
    return [(x[:PER_RANK_BATCH], y[:PER_RANK_BATCH]), (x[PER_RANK_BATCH:], y[PER_RANK_BATCH:])]


def shared_data():
    """Data every rank holds: two global batches of 2 x PER_RANK_BATCH."""
    return tiny_data(n=4 * PER_RANK_BATCH, seed=7)


def counting_allreduce(calls):
    """A DDP comm hook: DDP's own all-reduce, recording each bucket it reduces."""
    def hook(state, bucket):
        calls.append(bucket.index())
        return default_hooks.allreduce_hook(state, bucket)
    return hook


def reducer_per_method(rank, world_size, out):
    """Per method and step: all-reduces started during method.loss on the DDP module (must
    be 0), the buckets reduced by the backward (each once), and the largest difference
    between the DDP gradient and the mean over ranks of each rank's one-process gradient."""
    ranks = Ranks.setup(None, "cpu")
    x, y = rank_batches(rank)[0]
    report = {}
    for name in methods.available():
        method = methods.get(name, **OPTIONS[name])
        model, ddp = ranks.wrap(tiny_model(), method)
        calls = []
        ddp.register_comm_hook(None, counting_allreduce(calls))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        rows = []
        for _ in range(2):  # a second step: the reducer was left in a usable state
            ranks.sync_buffers(model)
            reference = copy.deepcopy(model)
            rng = torch.get_rng_state()
            calls.clear()
            optimizer.zero_grad(set_to_none=True)
            loss = method.loss(ddp, x, y).loss
            during = len(calls)
            loss.backward()
            buckets = list(calls)
            torch.set_rng_state(rng)  # the same random starts, on the bare copy
            local = torch.autograd.grad(method.loss(reference, x, y).loss,
                                        list(reference.parameters()))
            error = 0.0
            for param, grad in zip(model.parameters(), local):
                mean = grad.clone()
                dist.all_reduce(mean)
                error = max(error, float((param.grad - mean / world_size).abs().max()))
            rows.append({"during_loss": during, "buckets": buckets, "error": error})
            optimizer.step()
        report[name] = rows
    return report


def different_data_per_method(rank, world_size, out):
    """Per method: the weights after 2 steps on data only this rank holds."""
    weights = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "cannot shard a list": each rank's own batches
        for name in methods.available():
            result = fastadv.train(tiny_model(), name, rank_batches(rank),
                                   method_options=OPTIONS[name], **TRAIN)
            weights[name] = result.model.state_dict()
    return weights


def global_batch_per_method(rank, world_size, out):
    """Per method, random starts off, no batch norm: the weights after 2 steps of
    PER_RANK_BATCH per rank on the shared data."""
    weights = {}
    with zero_starts():
        for name in methods.available():
            result = fastadv.train(plain_model(), name, shared_data(), batch_size=PER_RANK_BATCH,
                                   method_options=OPTIONS[name], **TRAIN)
            weights[name] = result.model.state_dict()
    return weights


def shared_images():
    """shared_data as an ImageData: train() batches it with the DeviceLoader (augmented)."""
    x, y = shared_data()
    return fastadv.data.ImageData((x * 255).round().to(torch.uint8), y, 3, (0.5,), (0.25,))


def loaders_and_config(rank, world_size, out):
    """2 epochs of fast_at (random starts off, no batch norm) on a DataLoader sharded by a
    DistributedSampler and on an ImageData through the DeviceLoader: the final weights and
    the config of each."""
    x, y = shared_data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                         batch_size=PER_RANK_BATCH, shuffle=True)
    found = {}
    with zero_starts():
        for label, data in (("dataloader", loader), ("imagedata", shared_images())):
            result = fastadv.train(plain_model(), "fast_at", data, batch_size=PER_RANK_BATCH,
                                   method_options=OPTIONS["fast_at"], **{**TRAIN, "epochs": 2})
            found[label] = {"weights": result.model.state_dict(), "config": result.config}
    return found


def _error(call):
    try:
        call()
    except Exception as exc:  # the test checks the type and the message
        return type(exc).__name__, str(exc)
    return None


def bad_label_data():
    x, y = tiny_data(n=160, seed=7)
    y[150] = 7
    return x, y


def errors(rank, world_size, out):
    """The messages of the distributed user errors, on every rank."""
    x, y = shared_data()
    train = lambda model=None, data=(x, y), **kw: fastadv.train(  # noqa: E731
        model or tiny_model(), "fast_at", data, batch_size=PER_RANK_BATCH, **{**TRAIN, **kw})
    taken = str(out / "taken")
    train(run_dir=taken)  # a finished run: a fresh run there is refused on rank 0 alone
    return {
        "wrapped": _error(lambda: train(nn.DataParallel(tiny_model()))),
        "too_few": _error(lambda: train(data=(x[:12], y[:12]))),
        "mismatch": _error(lambda: train(lr=0.05 if rank == 0 else 0.1)),
        "sync_bn_cpu": _error(lambda: train(sync_bn=True)),
        "run_dir_taken": _error(lambda: train(run_dir=taken)),
        # a label out of range for the 3-class model, past the first 128 images (which are
        # checked as the first batch): found on the whole data, not on a rank's share
        "bad_label": _error(lambda: train(data=bad_label_data())),
        # and the ranks are still in step afterwards: the next run trains on both
        "after_refusal": _error(lambda: train()),
    }


def buffer_sync(rank, world_size, out):
    """How many times a TRADES step ran BufferSyncedDDP's buffer-sync override (DDP's private
    hook point: if a torch release stopped calling it, the count would be 0)."""
    from fastadv.training.distributed import BufferSyncedDDP
    calls = []
    original = BufferSyncedDDP._sync_buffers

    def counting(self):
        calls.append(1)
        return original(self)

    BufferSyncedDDP._sync_buffers = counting
    try:
        method = methods.get("trades", **OPTIONS["trades"])
        model, ddp = Ranks.setup(None, "cpu").wrap(tiny_model(), method)
        x, y = rank_batches(rank)[0]
        method.loss(ddp, x, y).loss.backward()
    finally:
        BufferSyncedDDP._sync_buffers = original
    return {"calls": len(calls)}


def resume_uninterrupted(rank, world_size, out):
    """The reference for the torchrun kill-and-resume test: the same run, never killed."""
    return resume_script.run("full", out / "resume-full")


def dead_rank(rank, world_size, out):
    """Rank 1 dies after the first epoch's checkpoint; rank 0 must fail with an error that
    names it, well before the process group timeout, instead of hanging. Keep it last."""
    def die(record):
        if rank == 1:
            os._exit(3)
    started = time.perf_counter()
    x, y = shared_data()
    message = _error(lambda: fastadv.train(tiny_model(), "fast_at", (x, y),
                                           batch_size=PER_RANK_BATCH, callback=die,
                                           **{**TRAIN, "epochs": 3}))
    return {"error": message, "seconds": time.perf_counter() - started}


SCENARIOS = [reducer_per_method, different_data_per_method, global_batch_per_method,
             loaders_and_config, errors, buffer_sync, resume_uninterrupted, dead_rank]
