"""``fastadv plot RUN_DIR [--out FILE]``: PNG training curves of a run directory's
metrics.jsonl - training loss, train / validation clean / validation robust accuracy, and the
learning rate, per epoch. Needs matplotlib (the optional extra ``fastadv[plot]``)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MISSING = ("fastadv plot needs matplotlib, an optional extra: pip install 'fastadv[plot]' "
           "(or pip install matplotlib)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory written by fastadv train")
    parser.add_argument("--out", default=None, help="PNG file (default: RUN_DIR/curves.png)")


def read_metrics(run_dir) -> list:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir!r} a fastadv run directory?")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records:
        raise ValueError(f"{path} holds no epochs yet")
    return records


def plot(records, out) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.8))
    for key, label in (("train_loss", "total"), ("train_ce_adv", "CE (adversarial)"),
                       ("train_ce_clean", "CE (clean)"), ("train_kl", "KL")):
        if any(key in r for r in records):
            ax_loss.plot(epochs, [r.get(key) for r in records], marker=".", label=label)
    ax_loss.set(title="training loss", xlabel="epoch")
    ax_loss.legend(fontsize=8)
    for key, label in (("train_accuracy", "train (on training inputs)"),
                       ("val_clean_accuracy", "validation clean"),
                       ("val_robust_accuracy", "validation PGD")):
        points = [(r["epoch"], r[key]) for r in records if key in r]
        if points:
            ax_acc.plot(*zip(*points), marker=".", label=label)
    ax_acc.set(title="accuracy", xlabel="epoch", ylim=(0, 1))
    ax_acc.legend(fontsize=8)
    ax_lr.plot(epochs, [r["lr"] for r in records], marker=".")
    ax_lr.set(title="learning rate (end of epoch)", xlabel="epoch")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def run(args) -> int:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(MISSING, file=sys.stderr)
        return 1
    records = read_metrics(args.run_dir)
    out = plot(records, args.out or Path(args.run_dir) / "curves.png")
    print(f"wrote {out}")
    return 0
