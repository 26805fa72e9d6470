"""Data-parallel scaling of fastadv.train under torchrun: images per second per GPU at 1, 2,
4 and 8 ranks for fast_at, backward_smoothing and fast_bat on PreActResNet-18 (CIFAR-shaped
data), and the scaling efficiency, images/s per GPU at N ranks over that at 1 rank (the goal
of the distributed issue: at least 90% at 8 GPUs).

    python benchmarks/distributed_scaling.py        # CUDA: 1, 2, 4, 8 ranks (up to the GPUs)
    python benchmarks/distributed_scaling.py --cpu  # CPU smoke figure: 1 vs 2 gloo ranks

Each world size is one torchrun launch (python -m torch.distributed.run --standalone) of this
script in worker mode, so the launch, process group and DDP are exactly those of a user's run.
Every rank trains through fastadv.train on synthetic device-resident data (the DeviceLoader
path, batch_size per rank), 2 epochs of --steps steps with validation and the guard off; the
second epoch's images/s of rank 0 is reported (the ranks run in lockstep, and the first epoch
holds the warm-up: cuDNN autotuning, DDP's bucket rebuild). World sizes beyond the GPUs
present are skipped and listed.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

METHODS = ("fast_at", "backward_smoothing", "fast_bat")
GPU_WORLD_SIZES = (1, 2, 4, 8)
CPU_WORLD_SIZES = (1, 2)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="gloo ranks on the CPU, small CNN")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--batch-size", type=int, default=None,
                        help="per rank (default: 128 on CUDA, the papers'; 32 on CPU)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per epoch (default: 50 on CUDA, 4 on CPU)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # rows file
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or (32 if args.cpu else 128)
    args.steps = args.steps or (4 if args.cpu else 50)
    return args


def worker(args) -> None:
    """One rank: train each method for 2 epochs; rank 0 writes the rows."""
    import fastadv

    world_size = int(os.environ["WORLD_SIZE"])
    device = "cpu" if args.cpu else "cuda"
    if not args.cpu:
        torch.backends.cudnn.benchmark = True
    from epoch_cases import synthetic_cifar  # this script's folder is on sys.path

    data = synthetic_cifar("cpu", world_size * args.batch_size * args.steps)
    rows = []
    for method in args.methods.split(","):
        torch.manual_seed(0)
        model = fastadv.models.get("small_cnn" if args.cpu else "preact_resnet18",
                                   num_classes=10, mean=data.mean, std=data.std)
        result = fastadv.train(model, method, data, epochs=2, batch_size=args.batch_size,
                               lr=0.1, val_size=0, guard=False, progress=False, device=device,
                               method_options={"eps": 8 / 255})
        last = result.history[-1]
        rows.append({"method": method, "world_size": world_size,
                     "model": "small_cnn" if args.cpu else "preact_resnet18",
                     "batch_per_rank": args.batch_size, "steps": args.steps,
                     "images_per_second_per_rank": last["images_per_second"],
                     "device": torch.cuda.get_device_name() if not args.cpu else "cpu",
                     "torch": torch.__version__, "threads": torch.get_num_threads()})
    if int(os.environ["RANK"]) == 0:
        Path(args.worker).write_text(json.dumps(rows))


def launch(args, world_size: int, rows_file: Path) -> list:
    """One torchrun launch of this script's worker with world_size ranks."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={world_size}", __file__, "--worker", str(rows_file),
               "--methods", args.methods, "--batch-size", str(args.batch_size),
               "--steps", str(args.steps)] + (["--cpu"] if args.cpu else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if args.cpu else dict(os.environ)
    subprocess.run(command, check=True, env=env)
    return json.loads(rows_file.read_text())


def table(rows: list) -> str:
    """Markdown: images/s per rank and efficiency against the 1-rank row of each method."""
    single = {r["method"]: r["images_per_second_per_rank"] for r in rows if r["world_size"] == 1}
    lines = ["| method | ranks | images/s per rank | images/s total | efficiency |",
             "|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["method"], r["world_size"])):
        per_rank = r["images_per_second_per_rank"]
        efficiency = per_rank / single[r["method"]] if r["method"] in single else float("nan")
        lines.append(f"| {r['method']} | {r['world_size']} | {per_rank:.0f} | "
                     f"{per_rank * r['world_size']:.0f} | {efficiency:.0%} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.cpu:
        sizes, present = CPU_WORLD_SIZES, max(CPU_WORLD_SIZES)
    elif not torch.cuda.is_available():
        print("no CUDA device: run with --cpu for the gloo smoke figure", file=sys.stderr)
        return 2
    else:
        sizes, present = GPU_WORLD_SIZES, torch.cuda.device_count()
    skipped = [w for w in sizes if w > present]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for world_size in (w for w in sizes if w <= present):
            rows += launch(args, world_size, Path(folder) / f"rows-{world_size}.json")
    print(table(rows))
    if skipped:
        print(f"skipped {skipped} ranks: only {present} GPU(s) present")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
