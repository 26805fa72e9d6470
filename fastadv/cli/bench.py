"""`fastadv bench`: time every fused op on every backend against the reference and a copy of
the same bytes, and print median time, GB/s and speed-up over the reference."""
from __future__ import annotations

import argparse

import torch

from fastadv._checks import check_device, check_int
from fastadv.ops.benchmark import OP_NAMES, median_seconds, op_cases, synchronized, timed_backends


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None,
                        help="device to time on: cpu, cuda, cuda:1 (default: cuda when "
                             "available, else cpu)")
    parser.add_argument("--repeat", type=int, default=20, help="timed calls per case")
    parser.add_argument("--ops", default=None,
                        help=f"comma-separated op names to time, of: {', '.join(OP_NAMES)} "
                             f"(default: all)")


def wanted_ops(text):
    """The op names of ``--ops`` (None: all), each one of OP_NAMES."""
    if not text:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in OP_NAMES]
    if unknown or not names:
        raise ValueError(f"--ops {text!r}: unknown op(s) {unknown}; the ops are "
                         f"{', '.join(OP_NAMES)}")
    return set(names)


def run(args: argparse.Namespace) -> int:
    check_int("--repeat", args.repeat, minimum=1)
    wanted = wanted_ops(args.ops)
    device = str(check_device("--device", args.device or
                              ("cuda" if torch.cuda.is_available() else "cpu")))
    backends = timed_backends(device)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"backends={','.join(backends)}")
    print(f"{'op':<34}{'backend':<11}{'median ms':>11}{'GB/s':>9}{'vs reference':>14}")
    for case in op_cases(device):
        if wanted is not None and case.op not in wanted and case.op != "copy":
            continue
        reference_s = None
        # the reference first, so every other row can show its speed-up over it
        order = sorted(backends, key=lambda b: b != "reference")
        for backend in (["torch"] if case.op == "copy" else order):
            seconds = median_seconds(synchronized(case.make(backend), device),
                                     repeat=args.repeat)
            if backend == "reference":
                reference_s = seconds
            ratio = f"{reference_s / seconds:.2f}x" if reference_s else ""
            print(f"{case.name:<34}{backend:<11}{seconds * 1e3:>11.3f}"
                  f"{case.bytes_moved / seconds / 1e9:>9.2f}{ratio:>14}")
    return 0
