"""Progress output: the mechanics shared by train() and evaluate() (:class:`Progress`), and the
training progress: one bar for the whole run (batches done, ETA) on a terminal, and after
every epoch one summary line (above the bar, or alone outside a terminal: CI, a log file).

Progress mechanics: a tqdm bar on a terminal, one plain line per unit of work (an epoch, an
attack) elsewhere, or nothing. ``enabled``: None chooses by whether stderr is a terminal
(bar there, lines elsewhere), True always shows the bar, False is silent. Bar and lines go to
stderr, so stdout keeps only results (the CLI's reports and tables). On a terminal a line is
written through ``tqdm.write``, which clears the bar, writes the line and redraws the bar
below it, so no stale partial bar is ever left above a line; the bar closes without a trace.
evaluate()'s per-attack progress (fastadv/evaluation/progress.py) builds on :class:`Progress`.
"""
from __future__ import annotations

import datetime
import math
import sys
import time
from typing import Optional

from fastadv._checks import check_optional_bool


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """A bar over ``total`` units (starting at ``initial``) and/or lines, as ``enabled`` says."""

    def __init__(self, total: int, *, enabled: Optional[bool], initial: int = 0,
                 unit: str = "it", desc: Optional[str] = None):
        check_optional_bool("progress", enabled)
        # looked up now, not at import: pytest and the CLI's tests swap sys.stderr
        self.stream = sys.stderr
        if enabled is None:
            self.mode = "bar" if _is_terminal(self.stream) else "lines"
        else:
            self.mode = "bar" if enabled else "off"
        self.bar = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit=unit, desc=desc, leave=False,
                            dynamic_ncols=True, file=self.stream)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def set_postfix(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)

    def set_description(self, text: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(text, refresh=False)

    def line(self, text: str) -> None:
        """One line of progress: above the bar while it shows, plain otherwise."""
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        elif self.mode != "off":
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def training_inputs(method_name: Optional[str]) -> str:
    """What train_accuracy is measured on: a method's logits are those of its training inputs
    (StepOutput), "clean" for standard training and "adversarial" for every other method."""
    return "clean" if method_name == "standard" else "adversarial"


def epoch_line(record: dict, epochs: int, label: str, eta_seconds: Optional[float]) -> str:
    """'epoch  3/15 | lr 0.08 | loss 1.2345 | adversarial acc 0.612 | val clean 0.900 robust
    0.450 | 1.2s | ETA 0:00:14' from an epoch's record (the metrics.jsonl line)."""
    parts = [f"epoch {record['epoch']:>{len(str(epochs))}}/{epochs}", f"lr {record['lr']:.4g}",
             f"loss {record.get('train_loss', math.nan):.4f}",
             f"{label} {record.get('train_accuracy', math.nan):.3f}"]
    if "train_mask_frac" in record:  # Fast-BAT: the README tells users to watch it
        parts.append(f"mask frac {record['train_mask_frac']:.3f}")
    if "val_robust_accuracy" in record:
        parts.append(f"val clean {record['val_clean_accuracy']:.3f} "
                     f"robust {record['val_robust_accuracy']:.3f}")
    if "guard_robust_accuracy" in record:
        parts.append(f"guard {record['guard_robust_accuracy']:.3f}"
                     + (" TRIGGERED: stopping" if record.get("guard_triggered") else ""))
    parts.append(f"{record['seconds']:.1f}s")
    if eta_seconds is not None and record["epoch"] < epochs:
        parts.append(f"ETA {datetime.timedelta(seconds=round(eta_seconds))}")
    return " | ".join(parts)


class TrainingProgress:
    """The run's bar over epochs x batches, and the epoch lines."""

    def __init__(self, epochs: int, iterations_per_epoch: int, enabled: Optional[bool], *,
                 first_epoch: int = 0, method_name: Optional[str] = None):
        self.epochs = epochs
        self.label = f"{training_inputs(method_name)} acc"
        self.progress = Progress(epochs * iterations_per_epoch, enabled=enabled,
                                 initial=first_epoch * iterations_per_epoch, unit="batch",
                                 desc=self._running(first_epoch))
        self.started = time.perf_counter()
        self.epochs_done = 0  # in this process: a resumed run's ETA uses its own pace

    def update(self, n: int = 1) -> None:
        self.progress.update(n)

    def epoch_done(self, record: dict) -> None:
        self.epochs_done += 1
        per_epoch = (time.perf_counter() - self.started) / self.epochs_done
        eta = per_epoch * (self.epochs - record["epoch"])
        self.progress.set_description(self._running(record["epoch"]))
        self.progress.line(epoch_line(record, self.epochs, self.label, eta))

    def _running(self, epochs_done: int) -> str:
        return f"epoch {min(epochs_done + 1, self.epochs)}/{self.epochs}"

    def close(self) -> None:
        self.progress.close()

    def __enter__(self) -> "TrainingProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # also when the run raises: the terminal is left on a fresh line


def progress_bar(epochs: int, iterations_per_epoch: int, enabled: Optional[bool], *,
                 first_epoch: int = 0, method_name: Optional[str] = None) -> TrainingProgress:
    """The progress of a run of ``epochs`` epochs resuming after ``first_epoch``;
    ``enabled`` None = a bar on a terminal, lines elsewhere; False = silent."""
    return TrainingProgress(epochs, iterations_per_epoch, enabled, first_epoch=first_epoch,
                            method_name=method_name)
