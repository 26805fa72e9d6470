"""train()'s progress: one bar for the run that leaves no stale partial bar on a terminal,
an epoch summary line with the ETA, one plain line per epoch outside a terminal, silence
with progress=False."""
import sys

import pytest

import fastadv
from fastadv.training.progress import epoch_line
from tests.fake_terminal import FakeTerminal, redraw_every_update
from tests.training.helpers import tiny_data, tiny_model

RUN = dict(epochs=3, batch_size=8, val_size=8)


def test_outside_a_terminal_one_plain_line_per_epoch(capsys):
    x, y = tiny_data(n=40)
    fastadv.train(tiny_model(), "fast_at", (x, y), method_options={"eps": 0.1}, guard=False,
                  **RUN)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert [line.split(" | ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "adversarial acc" in lines[0] and "val clean" in lines[0] and "ETA" in lines[0]
    assert "ETA" not in lines[-1]  # nothing left to wait for
    assert "\r" not in captured.err and "%|" not in captured.err  # no bar
    assert captured.out == ""  # stdout is for results


def test_progress_false_is_silent(capsys):
    x, y = tiny_data(n=40)
    fastadv.train(tiny_model(), "standard", (x, y), progress=False, **RUN)
    assert capsys.readouterr().err == ""


def test_on_a_terminal_the_bar_leaves_only_the_epoch_lines(monkeypatch):
    redraw_every_update(monkeypatch)
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    x, y = tiny_data(n=40)
    fastadv.train(tiny_model(), "standard", (x, y), **RUN)
    raw = terminal.getvalue()
    assert "batch/s" in raw and "epoch 2/3" in raw  # a bar was drawn, with its epoch
    screen = terminal.screen()
    assert [line.split(" | ")[0] for line in screen] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "clean acc" in screen[0]  # standard training measures clean inputs


def test_progress_must_be_a_bool_or_none():
    x, y = tiny_data(n=16)
    with pytest.raises(TypeError, match="progress must be None or a bool"):
        fastadv.train(tiny_model(), "standard", (x, y), epochs=1, progress="yes")


def test_epoch_line_names_what_the_record_holds():
    record = {"epoch": 2, "lr": 0.05, "train_loss": 1.5, "train_accuracy": 0.25,
              "train_mask_frac": 0.4, "val_clean_accuracy": 0.9, "val_robust_accuracy": 0.5,
              "guard_robust_accuracy": 0.1, "guard_triggered": True, "seconds": 2.0}
    line = epoch_line(record, 10, "adversarial acc", eta_seconds=16.0)
    assert line == ("epoch  2/10 | lr 0.05 | loss 1.5000 | adversarial acc 0.250 | mask frac "
                    "0.400 | val clean 0.900 robust 0.500 | guard 0.100 TRIGGERED: stopping | "
                    "2.0s | ETA 0:00:16")
