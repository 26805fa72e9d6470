"""`fastadv plot`: a title naming the run, Fast-BAT's train_mask_frac when the run has it,
and a metrics.jsonl whose last line was cut off (power loss) plots its complete epochs."""
import json
import struct

import pytest

from fastadv.cli import main
from fastadv.cli.plot import read_metrics, title

pytest.importorskip("matplotlib")


def _run_dir(tmp_path, records, tail="", method="fast_bat"):
    run = tmp_path / "run"
    run.mkdir()
    lines = "".join(json.dumps(r) + "\n" for r in records)
    (run / "metrics.jsonl").write_text(lines + tail)
    (run / "config.json").write_text(json.dumps({"method": {"method": method, "eps": 0.2},
                                                 "dataset": "digits"}))
    return run


def _records(mask=True):
    out = []
    for epoch in (1, 2, 3):
        record = {"epoch": epoch, "lr": 0.1 / epoch, "train_loss": 2.0 / epoch,
                  "train_accuracy": 0.2 * epoch, "val_clean_accuracy": 0.3 * epoch,
                  "val_robust_accuracy": 0.1 * epoch}
        if mask:
            record["train_mask_frac"] = 0.5
        out.append(record)
    return out


def _png_width(path) -> int:
    return struct.unpack(">I", path.read_bytes()[16:20])[0]


def test_a_cut_off_last_line_is_skipped_with_a_warning(tmp_path, capsys):
    run = _run_dir(tmp_path, _records(), tail='{"epoch": 4, "lr": 0.0')
    with pytest.warns(RuntimeWarning, match=r"last line \(line 4\) is cut off"):
        assert [r["epoch"] for r in read_metrics(run)] == [1, 2, 3]
    assert main(["plot", str(run)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("fastadv: warning: ") and "cut off" in err and err.count("\n") == 1
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_mask_fraction_gets_its_own_panel(tmp_path):
    with_mask = _run_dir(tmp_path, _records(mask=True))
    assert main(["plot", str(with_mask), "--out", str(tmp_path / "mask.png")]) == 0
    (with_mask / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in _records(mask=False)))
    assert main(["plot", str(with_mask), "--out", str(tmp_path / "plain.png")]) == 0
    assert _png_width(tmp_path / "mask.png") > _png_width(tmp_path / "plain.png")


def test_the_title_names_the_run_method_data_and_eps(tmp_path):
    run = _run_dir(tmp_path, _records())
    assert title(run, json.loads((run / "config.json").read_text())) == \
        f"{run}: fast_bat on digits, eps 0.2"
    assert title("runs/x", {}) == "runs/x"
