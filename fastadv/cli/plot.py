"""``fastadv plot RUN_DIR [--out FILE]``: PNG training curves of a run directory's
metrics.jsonl - training loss; accuracy on the training (adversarial) inputs and on the
validation split, clean and under PGD; the learning rate; and for Fast-BAT the share of
coordinates inside the feasible set (train_mask_frac, which the README says to watch) - per
epoch, under a title naming the run. Needs matplotlib (the optional extra ``fastadv[plot]``).

A metrics.jsonl whose last line was cut off (power loss mid-write) plots the complete epochs
with a warning; a damaged line before the last is an error naming it.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from fastadv.training.progress import training_inputs

MISSING = ("fastadv plot needs matplotlib, an optional extra: pip install 'fastadv[plot]' "
           "(or pip install matplotlib)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory written by fastadv train")
    parser.add_argument("--out", default=None, help="PNG file (default: RUN_DIR/curves.png)")


def read_metrics(run_dir) -> list:
    """The epoch records of RUN_DIR/metrics.jsonl, skipping a cut-off last line."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir!r} a fastadv run directory?")
    lines = [(number, line) for number, line in enumerate(path.read_text().splitlines(), 1)
             if line.strip()]
    records = []
    for position, (number, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if position < len(lines) - 1:
                raise ValueError(f"{path}, line {number}, is not a JSON record; only the last "
                                 f"line can be cut off by an interrupted write") from None
            warnings.warn(f"{path}: the last line (line {number}) is cut off, as an "
                          f"interrupted write leaves it; plotting the complete epochs "
                          f"({len(records)})", RuntimeWarning, stacklevel=2)
    if not records:
        raise ValueError(f"{path} holds no epochs yet")
    return records


def read_config(run_dir) -> dict:
    """RUN_DIR/config.json, or {} when it is missing or unreadable (the title then says less)."""
    try:
        config = json.loads((Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def title(run_dir, config: dict) -> str:
    """'runs/bs: backward_smoothing on digits, eps 0.2' (what config.json says)."""
    method = config.get("method") if isinstance(config.get("method"), dict) else {}
    parts = [str(p) for p in (method.get("method"), config.get("dataset")) if p]
    text = f"{run_dir}: {' on '.join(parts)}" if parts else str(run_dir)
    eps = method.get("eps")
    return f"{text}, eps {eps:.4g}" if isinstance(eps, (int, float)) else text


def plot(records, out, *, heading: str = "", method_name=None) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in records]
    has_mask = any("train_mask_frac" in r for r in records)
    fig, axes = plt.subplots(1, 4 if has_mask else 3, figsize=(17 if has_mask else 13, 4.2))
    ax_loss, ax_acc, ax_lr = axes[:3]
    for key, label in (("train_loss", "total"), ("train_ce_adv", "CE (adversarial)"),
                       ("train_ce_clean", "CE (clean)"), ("train_kl", "KL")):
        if any(key in r for r in records):
            ax_loss.plot(epochs, [r.get(key) for r in records], marker=".", label=label)
    ax_loss.set(title="training loss", xlabel="epoch")
    ax_loss.legend(fontsize=8)
    for key, label in (("train_accuracy", f"training ({training_inputs(method_name)} inputs)"),
                       ("val_clean_accuracy", "validation clean"),
                       ("val_robust_accuracy", "validation PGD")):
        points = [(r["epoch"], r[key]) for r in records if key in r]
        if points:
            ax_acc.plot(*zip(*points), marker=".", label=label)
    ax_acc.set(title="accuracy", xlabel="epoch", ylim=(0, 1))
    ax_acc.legend(fontsize=8)
    ax_lr.plot(epochs, [r["lr"] for r in records], marker=".")
    ax_lr.set(title="learning rate (end of epoch)", xlabel="epoch")
    if has_mask:
        points = [(r["epoch"], r["train_mask_frac"]) for r in records if "train_mask_frac" in r]
        axes[3].plot(*zip(*points), marker=".")
        axes[3].set(title="train_mask_frac (inside the feasible set)", xlabel="epoch",
                    ylim=(0, 1))
    if heading:
        fig.suptitle(heading)
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
    config = read_config(args.run_dir)
    method = config.get("method") if isinstance(config.get("method"), dict) else {}
    out = plot(records, args.out or Path(args.run_dir) / "curves.png",
               heading=title(args.run_dir, config), method_name=method.get("method"))
    print(f"wrote {out}")
    return 0
