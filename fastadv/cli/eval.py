"""``fastadv eval CHECKPOINT_OR_RUN_DIR``: evaluate a trained model under attacks.

    fastadv eval runs/bs --data cifar10 --data-dir ~/data --attacks clean,pgd-50-10,autoattack,rays \
        --eps 8/255 --n-examples 1000 --out runs/bs/eval.json

Loads the model with fastadv.checkpoint.load_model, the test split of the data set (by default
the one the checkpoint was trained on; "digits" needs no files), runs fastadv.evaluate(),
prints a table and writes the JSON record (by default next to the checkpoint, as
``<checkpoint>.eval.json``).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from fastadv.cli.numbers import parse_number


def trained_eps(checkpoint: dict) -> float:
    """The radius a checkpoint was trained (and validated) at, so that a digits model trained
    at 0.2 is not silently evaluated at CIFAR's 8/255; 8/255 when the checkpoint has none."""
    config = checkpoint.get("config") or {}
    for value in (config.get("val_eps"), (config.get("method") or {}).get("eps")):
        if isinstance(value, (int, float)) and value >= 0:
            return float(value)
    return 8 / 255


def parse_eps(text: str) -> float:
    """A float ("0.031") or a fraction ("8/255"); a bare "8" means 8.0, never 8/255."""
    value = float(parse_number(text))
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0 such as 8/255, "
                                         f"got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR",
                        help="a checkpoint file (.pt) or a run directory")
    parser.add_argument("--which", choices=("best", "last"), default="best",
                        help="checkpoint of a run directory to evaluate")
    parser.add_argument("--data", default=None,
                        help="data set: digits, cifar10, cifar100 (default: the checkpoint's)")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the CIFAR python archives (not needed for digits)")
    parser.add_argument("--split", choices=("test", "train"), default="test",
                        help="split of the data set to evaluate on")
    parser.add_argument("--attacks", default="clean,pgd-20",
                        help="comma-separated attack specs: clean, fgsm, pgd-K, pgd-K-R, "
                             "autoattack, rays, rays-Q (default: clean,pgd-20)")
    parser.add_argument("--eps", type=parse_eps, default=None,
                        help="L-inf radius in [0, 1] pixel units, e.g. 8/255 (default: the "
                             "eps the checkpoint was trained at, else 8/255)")
    parser.add_argument("--alpha", type=parse_eps, default=None,
                        help="PGD step size (default: eps/4)")
    parser.add_argument("--loss", choices=("ce", "dlr"), default="ce", help="PGD loss")
    parser.add_argument("--n-examples", type=int, default=None,
                        help="evaluate the first N test points (default: all)")
    parser.add_argument("--batch-size", type=int, default=256, help="points per attack batch")
    parser.add_argument("--seed", type=int, default=0, help="seeds every attack")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if "
                                                       "available)")
    parser.add_argument("--progress", default=None, action=argparse.BooleanOptionalAction,
                        help="a bar per attack (default: on a terminal; elsewhere one line "
                             "per attack)")
    parser.add_argument("--out", default=None,
                        help="JSON output file (default: <checkpoint>.eval.json)")


def _percent(value: float) -> str:
    return f"{100 * value:6.2f}%"


def format_table(record: dict) -> str:
    lines = [f"n = {record['n']}, eps = {record['eps']:.6g} "
             f"({record['eps'] * 255:.3g}/255)",
             f"{'attack':<16} {'robust acc':>10} {'seconds':>9}  details"]
    for spec, entry in record["attacks"].items():
        detail = ""
        if "adbd" in entry:
            detail = f"ADBD {entry['adbd']:.5f}"
        if "package_version" in entry:
            detail = f"pyautoattack {entry['package_version']} ({entry['version']})"
        lines.append(f"{spec:<16} {_percent(entry['robust_accuracy']):>10} "
                     f"{entry['seconds']:9.2f}  {detail}")
    lines.append(f"{'clean accuracy':<16} {_percent(record['clean_accuracy']):>10}")
    lines.append(f"{'worst case':<16} {_percent(record['robust_accuracy']):>10}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from fastadv.training.distributed import command_session

    with command_session():  # under torchrun: rank 0 prints; the process group ends
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import torch

    from fastadv import checkpoint as checkpoints
    from fastadv import data as datasets
    from fastadv._checks import check_device
    from fastadv.evaluation import evaluate
    from fastadv.training.distributed import is_main_process, join

    device = check_device("--device", args.device or
                          ("cuda" if torch.cuda.is_available() else "cpu"))
    device = join(device)  # under torchrun: the process group, and this rank's device
    model, ckpt = checkpoints.load_model(args.checkpoint, which=args.which, device=device)
    path = checkpoints.checkpoint_path(args.checkpoint, args.which)
    name = args.data or ckpt.get("dataset")
    if not name:
        raise ValueError("the checkpoint names no data set; pass --data")
    eps = args.eps if args.eps is not None else trained_eps(ckpt)
    test = datasets.load(name, root=args.data_dir, split=args.split)
    options = {"loss": args.loss}
    if args.alpha is not None:
        options["alpha"] = args.alpha
    try:
        record = evaluate(model, test, attacks=args.attacks, eps=eps,
                          batch_size=args.batch_size, n_examples=args.n_examples,
                          seed=args.seed, device=device, progress=args.progress, **options)
    except ImportError as exc:  # an optional attack's package (pyautoattack) is missing
        raise ValueError(str(exc)) from exc
    record["checkpoint"] = str(path)
    record["dataset"] = name
    record["split"] = args.split
    record["epoch"] = ckpt.get("epoch")
    out = Path(args.out) if args.out else path.with_suffix(".eval.json")
    if is_main_process():  # one writer under torchrun
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n")
    print(format_table(record))
    print(f"record written to {out}")
    return 0
