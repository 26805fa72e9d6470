"""The CLI's error rule (issue 10): every user error prints ONE line ``fastadv <command>:
error: ...`` on stderr and exits 2, with no traceback; an internal error keeps its
traceback. Warnings print as one tidy line each; help shows defaults and choices.

The bad invocations are a table; each runs in this process through fastadv.cli.main."""
import json
import warnings

import pytest
import torch

from fastadv import cli
from fastadv.cli import bench as cli_bench

NO_GPU = "cuda:99" if torch.cuda.is_available() else "cuda"  # a device this machine lacks
QUICK = ["--no-progress", "--eval-steps", "1", "--val-size", "0", "--batch-size", "256"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 2-epoch run directory and damaged checkpoint files next to it."""
    root = tmp_path_factory.mktemp("cli_errors")
    run = root / "run"
    assert cli.main(["train", "--method", "standard", "--epochs", "2", "--run-dir", str(run),
                     *QUICK]) == 0
    last = (run / "checkpoints" / "last.pt").read_bytes()
    (root / "empty.pt").write_bytes(b"")
    (root / "truncated.pt").write_bytes(last[:len(last) // 2])
    (root / "garbage.pt").write_bytes(b"this is not a checkpoint\n" * 40)
    bad_metrics = root / "bad_metrics"
    bad_metrics.mkdir()
    (bad_metrics / "metrics.jsonl").write_text('{"epoch": 1, "lr"\n{"epoch": 2, "lr": 0.1}\n')
    return root


BAD_INVOCATIONS = [
    # (argv with {root} for the fixture's folder, command, text the error line must hold)
    (["train", "--set", "beta=oops", "--epochs", "1"], "train", "beta must be a real number"),
    (["train", "--model", "nope", "--epochs", "1"], "train", "unknown model name 'nope'"),
    (["train", "--method", "nope"], "train", "available: standard"),
    (["train", "--device", NO_GPU, "--epochs", "1"], "train", "does not exist"),
    (["train", "--val-size", "2.0", "--epochs", "1"], "train", "a count must be an int"),
    (["train", "--dataset", "cifar10", "--data-dir", "{root}/nowhere"], "train", "--data-dir"),
    (["train", "--resume", "{root}/run", "--epochs", "1"], "train",
     "below the 2 epochs {root}/run has already trained"),
    (["train", "--resume", "{root}/empty.pt"], "train", "empty.pt"),
    (["train", "--resume", "{root}/truncated.pt"], "train", "truncated.pt"),
    (["train", "--resume", "{root}/garbage.pt"], "train", "garbage.pt"),
    (["train", "--run-dir", "{root}/run", "--epochs", "1"], "train", "--overwrite"),
    (["eval", "{root}/run", "--device", NO_GPU], "eval", "does not exist"),
    (["eval", "{root}/empty.pt", "--data", "digits"], "eval", "empty.pt"),
    (["eval", "{root}/truncated.pt", "--data", "digits"], "eval", "truncated.pt"),
    (["eval", "{root}/garbage.pt", "--data", "digits"], "eval", "garbage.pt"),
    (["eval", "{root}/missing"], "eval", "does not exist"),
    (["eval", "{root}/run", "--eps", "2", "--attacks", "clean"], "eval", "8/255, not 8"),
    (["eval", "{root}/run", "--attacks", "pgd50"], "eval", "unknown attack spec"),
    (["bench", "--ops", "nope"], "bench", "unknown op(s) ['nope']"),
    (["bench", "--device", NO_GPU], "bench", "does not exist"),
    (["bench", "--repeat", "0"], "bench", "--repeat must be >= 1"),
    (["plot", "{root}/bad_metrics"], "plot", "line 1, is not a JSON record"),
]


@pytest.mark.parametrize("argv,command,text", BAD_INVOCATIONS,
                         ids=[" ".join(row[0][:3]) for row in BAD_INVOCATIONS])
def test_a_user_error_is_one_line_and_exit_2(files, capsys, argv, command, text):
    if command == "plot":
        pytest.importorskip("matplotlib")
    argv = [arg.format(root=files) for arg in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if not line.startswith("fastadv: warning: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fastadv {command}: error: ")
    assert text.format(root=files) in lines[0]


def test_a_refused_resume_leaves_the_run_as_it_was(files):
    before = (files / "run" / "metrics.jsonl").read_text()
    assert cli.main(["train", "--resume", str(files / "run"), "--epochs", "1", *QUICK]) == 2
    assert (files / "run" / "metrics.jsonl").read_text() == before


def test_an_internal_error_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise RuntimeError("a bug in fastadv")

    monkeypatch.setattr(cli_bench, "run", broken)
    with pytest.raises(RuntimeError, match="a bug in fastadv"):
        cli.main(["bench"])


def test_warnings_print_as_one_tidy_line_and_only_inside_the_cli(monkeypatch, capsys):
    def warns(args):
        warnings.warn("something looks\n    wrong here", RuntimeWarning)
        return 0

    monkeypatch.setattr(cli_bench, "run", warns)
    original = warnings.showwarning
    assert cli.main(["bench"]) == 0
    assert capsys.readouterr().err == "fastadv: warning: something looks wrong here\n"
    assert warnings.showwarning is original  # the Python API keeps Python's format


def test_the_training_report_counts_the_images_trained_on(files, capsys):
    run = files / "run_with_validation"
    assert cli.main(["train", "--method", "standard", "--epochs", "1", "--run-dir", str(run),
                     "--no-progress", "--eval-steps", "1"]) == 0
    banner = capsys.readouterr().out.splitlines()[0]
    config = json.loads((run / "config.json").read_text())
    assert (config["n_train"], config["n_val"]) == (1293, 144)
    assert "(1293 training images, 144 held out for validation)" in banner
    assert config["threads"] == 1  # what the CLI trained with


def test_overwrite_replaces_a_finished_run(files, capsys):
    run = files / "run_to_replace"
    args = ["train", "--method", "standard", "--epochs", "1", "--run-dir", str(run), *QUICK]
    assert cli.main(args) == 0
    assert cli.main(args) == 2  # refused, as in the table
    assert cli.main([*args, "--overwrite"]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize("command,shown", [
    ("train", ["(default: 20)", "{cyclic,piecewise,cosine,constant}", "backward_smoothing",
               "small_cnn", "(default: 15 on digits, 30 on cifar10/cifar100"]),
    ("eval", ["(default: best)", "{best,last}", "(default: 256)", "(default: clean,pgd-20)"]),
    ("bench", ["(default: 20)", "kl_div_logits"]),
])
def test_help_shows_defaults_and_choices(command, shown, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    for text in shown:
        assert text in out, text
    assert "(default: None)" not in out
