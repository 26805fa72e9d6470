"""`fastadv train` and `fastadv plot` from the command line (train/plot parts)."""
import json

import pytest

from fastadv.cli import plot as cli_plot, train as cli_train
from fastadv.cli import build_parser, main


def parse(*argv):
    return build_parser().parse_args(["train", *argv])


def test_no_arguments_is_backward_smoothing_on_digits():
    args = parse()
    cli_train.fill_defaults(args)
    assert (args.method, args.dataset, args.model) == ("backward_smoothing", "digits", None)
    options = cli_train.method_options(args)
    assert options == {"eps": 0.2}


def test_hyperparameters_from_flags_and_set():
    args = parse("--method", "fast_bat", "--eps", "8/255", "--set", "lam=5", "--set",
                 "linearization=corner", "--dataset", "cifar10")
    options = cli_train.method_options(args)
    assert options == {"eps": pytest.approx(8 / 255), "lam": 5, "linearization": "corner"}
    # digits presets fill only what the user left out
    args = parse("--method", "fast_bat", "--alpha", "3")
    assert cli_train.method_options(args) == {"eps": 0.2, "alpha": 3}
    assert cli_train.parse_number("0.031") == pytest.approx(0.031)
    assert cli_train.parse_number("10") == 10 and isinstance(cli_train.parse_number("10"), int)


def test_flag_that_does_not_apply_is_an_error():
    with pytest.raises(ValueError, match="beta"):
        cli_train.method_options(parse("--method", "fast_at", "--beta", "3"))
    with pytest.raises(SystemExit):
        parse("--eps", "eight")


def test_train_then_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")  # the plot extra; the missing case is tested below
    run_dir = tmp_path / "run"
    # no validation split: "best" is then the last epoch, so clean accuracy has a floor (with
    # robust selection, standard training's best epoch is whichever PGD happened to miss most)
    code = main(["train", "--method", "standard", "--epochs", "2", "--run-dir", str(run_dir),
                 "--eval-steps", "2", "--no-progress", "--val-size", "0"])
    assert code == 0
    out = capsys.readouterr().out
    assert "best checkpoint" in out and "PGD-2 robust" in out
    results = json.loads((run_dir / "test_results.json").read_text())
    assert results["n_test"] == 360 and 0 <= results["robust_accuracy"] <= results["clean_accuracy"]
    assert results["clean_accuracy"] > 0.3  # chance is 0.1; two epochs already learn
    assert main(["plot", str(run_dir), "--out", str(tmp_path / "c.png")]) == 0
    png = (tmp_path / "c.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_plot_without_matplotlib_names_the_extra(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert main(["plot", str(tmp_path)]) == 1
    assert "pip install 'fastadv[plot]'" in capsys.readouterr().err


def test_plot_of_a_missing_run_dir_fails_cleanly(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert "metrics.jsonl" in capsys.readouterr().err


def test_train_reports_bad_method(capsys):
    assert main(["train", "--method", "nonsense"]) == 2
    assert "available: standard" in capsys.readouterr().err


def test_resume_continues_the_runs_method_and_hyperparameters(tmp_path, capsys):
    # README: `fastadv train --resume runs/trades --epochs 20` after training TRADES; the
    # resumed run must not silently switch to the default method (Backward Smoothing)
    run_dir = tmp_path / "run"
    common = ["--eval-steps", "1", "--no-progress", "--val-size", "0", "--batch-size", "256"]
    assert main(["train", "--method", "trades", "--set", "beta=5", "--set", "steps=1",
                 "--epochs", "1", "--run-dir", str(run_dir), *common]) == 0
    assert main(["train", "--resume", str(run_dir), "--epochs", "2", *common]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["method"]["method"] == "trades"
    assert config["method"]["beta"] == 5 and config["method"]["steps"] == 1
    assert config["epochs"] == 2 and config["batch_size"] == 256
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert capsys.readouterr().out.count("fastadv train: trades on digits") == 2


def test_same_seed_same_weights(tmp_path):
    """The seed covers the model's initial weights too, not only the training loop."""
    import torch

    states = []
    for name in ("a", "b"):
        torch.manual_seed(len(name) * 1000 + ord(name))  # a different global state each time
        assert main(["train", "--method", "fast_at", "--epochs", "1", "--no-progress",
                     "--eval-steps", "1", "--run-dir", str(tmp_path / name)]) == 0
        states.append(torch.load(tmp_path / name / "checkpoints" / "last.pt",
                                 weights_only=True)["model_state"])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
