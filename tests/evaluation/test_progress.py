"""evaluate()'s progress: per attack a bar (points done, running robust accuracy, ETA) on a
terminal that leaves only the attack's result line, one plain line per attack outside a
terminal, silence with progress=False."""
import sys

import pytest

from fastadv import evaluate
from tests.fake_terminal import FakeTerminal, redraw_every_update
from tests.helpers import net_data, small_net

ATTACKS = ["clean", "pgd-3", "rays-30"]


def test_outside_a_terminal_one_line_per_attack(capsys):
    model = small_net()
    x, y = net_data(model)
    record = evaluate(model, (x, y), attacks=ATTACKS, eps=0.1, batch_size=16)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert [line.split(":")[0] for line in lines] == ATTACKS
    pgd = record["attacks"]["pgd-3"]
    assert lines[1] == (f"pgd-3: robust accuracy {100 * pgd['robust_accuracy']:.2f}% "
                        f"({pgd['n_attacked']} of 40 points attacked, {pgd['seconds']:.1f}s)")
    assert lines[0].startswith("clean: accuracy ")
    assert "\r" not in captured.err and captured.out == ""


def test_progress_false_is_silent_and_progress_is_checked_first(capsys):
    model = small_net()
    x, y = net_data(model)
    evaluate(model, (x, y), attacks=ATTACKS, eps=0.1, progress=False)
    assert capsys.readouterr().err == ""
    with pytest.raises(TypeError, match="progress must be None or a bool"):
        evaluate(model, (x, y), progress=1)


def test_on_a_terminal_each_bar_gives_way_to_its_result_line(monkeypatch):
    redraw_every_update(monkeypatch)
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    model = small_net()
    x, y = net_data(model)
    evaluate(model, (x, y), attacks=ATTACKS, eps=0.1, batch_size=8)
    raw = terminal.getvalue()
    assert "pt/s" in raw and "robust ~" in raw  # bars with the running robust accuracy
    assert [line.split(":")[0] for line in terminal.screen()] == ATTACKS
