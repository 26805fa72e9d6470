"""The epoch benchmark: seconds per epoch of 50,000 CIFAR-shaped synthetic images (uint8,
device-resident) for fast_at, backward_smoothing, fast_bat, trades and pgd_at on
PreActResNet-18 at batch 128 and 512, through train()'s own batch loop: the DeviceLoader
(crop + flip on the device), the TrainingStep and the on-device EpochMeter, read once.

A fraction of an epoch is timed after untimed warm-up steps (compiling, capturing) and the
time is extrapolated to the epoch's 50,000 // batch steps; every result says how many steps
it timed. Used by benchmarks/test_bench_epoch.py, benchmarks/gpu_check.py (a quarter epoch per
method) and from the shell:

    python benchmarks/epoch_cases.py --fraction 0.01 --batch 128 --methods fast_at
"""
from __future__ import annotations

import argparse
import math
import time

import torch

import fastadv
from fastadv import methods
from fastadv.data import DeviceLoader, ImageData
from fastadv.data.cifar import _SETS as CIFAR_SETS
from fastadv.training.compiled import StepOptions, TrainingStep
from fastadv.training.metrics import EpochMeter
from fastadv.training.precision import Precision

METHODS = ("fast_at", "backward_smoothing", "fast_bat", "trades", "pgd_at")
BATCHES = (128, 512)
IMAGES = 50_000
CIFAR10 = CIFAR_SETS["cifar10"]


def synthetic_cifar(device, n: int = IMAGES) -> ImageData:
    """``n`` uint8 3x32x32 images with labels (CIFAR-10's count by default), made on
    ``device`` (no download)."""
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, device=device, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g, device=device)
    return ImageData(x, y, num_classes=10, mean=CIFAR10["mean"], std=CIFAR10["std"],
                     name="synthetic-cifar")


def epoch_seconds(name: str, batch: int, *, device, fraction: float, compile=False,
                  cuda_graphs: bool = False, warmup: int = 2, data: ImageData = None) -> dict:
    """Time ``fraction`` of an epoch (at least one step) of method ``name``; returns the
    extrapolated seconds per epoch and how they were measured."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = fastadv.models.get("preact_resnet18", num_classes=10, mean=CIFAR10["mean"],
                               std=CIFAR10["std"]).to(device)
    precision = Precision(None, None, device, 3)
    precision.prepare_model(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    options = StepOptions.resolve(compile, cuda_graphs, device)
    if options.cuda_graphs or options.compile_kwargs is not None:
        warmup = max(warmup, 5)  # the first steps compile and capture
    step = TrainingStep(methods.get(name), model, optimizer, params, precision, options)
    loader = DeviceLoader(data if data is not None else synthetic_cifar(device), batch,
                          train=True, device=device, seed=0)
    steps_per_epoch = len(loader)
    timed = max(1, min(steps_per_epoch - warmup, math.ceil(fraction * steps_per_epoch)))
    batches = iter(loader)
    model.train()
    for _ in range(warmup):
        x, y = next(batches)
        step(precision.prepare_batch(x), y, 0.01)
    meter = EpochMeter(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(timed):
        x, y = next(batches)
        out = step(precision.prepare_batch(x), y, 0.01)
        meter.update(x.shape[0], out.loss, out.logits, y, out.metrics)
    meter.read()  # the epoch's one host read, which also waits for the device
    seconds = time.perf_counter() - start
    return {"method": name, "batch": batch, "torch_device": str(device),
            "compile": options.describe()["compile"], "cuda_graphs": options.cuda_graphs,
            "amp": precision.describe()["amp"], "channels_last": precision.channels_last,
            "timed_steps": timed, "steps_per_epoch": steps_per_epoch,
            "timed_fraction": round(timed / steps_per_epoch, 4),
            "seconds_timed": round(seconds, 3),
            "seconds_per_epoch": round(seconds / timed * steps_per_epoch, 2),
            "extrapolated": timed < steps_per_epoch}


def describe(result: dict) -> str:
    how = (f"extrapolated from {result['timed_steps']} of {result['steps_per_epoch']} steps"
           if result["extrapolated"] else "a whole epoch")
    return (f"{result['method']:>18} batch {result['batch']:>3} {result['torch_device']} "
            f"amp {result['amp']} compile {bool(result['compile'])} graphs "
            f"{result['cuda_graphs']}: {result['seconds_per_epoch']:.1f} s per epoch ({how})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--batch", type=int, action="append", default=None)
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--compile", default=None, help="a torch.compile mode (default: off)")
    args = parser.parse_args(argv)
    data = synthetic_cifar(args.device)
    for batch in args.batch or BATCHES:
        for name in args.methods.split(","):
            print(describe(epoch_seconds(name, batch, device=args.device,
                                         fraction=args.fraction, compile=args.compile or False,
                                         data=data)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
