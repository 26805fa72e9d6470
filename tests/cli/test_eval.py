"""``fastadv eval``: from a checkpoint or run directory to a printed table and a JSON record,
on the bundled digits (no files needed)."""
import argparse
import json

import pytest
import torch

from fastadv import cli, data, evaluate, models
from fastadv.cli.eval import parse_eps


def _spec():
    digits = data.load("digits", split="test")
    return {"name": "small_cnn", "num_classes": 10, "in_channels": 1, "width": 8,
            "mean": list(digits.mean), "std": list(digits.std)}


def _trained_a_little(spec):
    """A few Adam steps so the model is better than chance and attacks have work to do."""
    torch.manual_seed(0)
    kwargs = dict(spec)
    model = models.get(kwargs.pop("name"), **kwargs)
    train = data.load("digits", split="train")
    x, y = train.x.float() / 255, train.y
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(80):
        index = torch.arange(step * 64, (step + 1) * 64) % len(y)
        loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    spec = _spec()
    model = _trained_a_little(spec)
    (root / "checkpoints").mkdir()
    torch.save({"model_state": model.state_dict(), "model_spec": spec, "dataset": "digits",
                "epoch": 3, "config": {}}, root / "checkpoints" / "best.pt")
    return root, model


def test_eval_run_dir_writes_record_next_to_checkpoint(run_dir, capsys):
    root, model = run_dir
    rc = cli.main(["eval", str(root), "--attacks", "clean,pgd-3,rays-50", "--eps", "16/255",
                   "--n-examples", "40", "--device", "cpu"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "pgd-3" in out and "worst case" in out and "ADBD" in out
    record = json.loads((root / "checkpoints" / "best.eval.json").read_text())
    assert record["n"] == 40 and record["dataset"] == "digits"
    assert record["eps"] == pytest.approx(16 / 255)
    assert record["clean_accuracy"] > 0.5  # the model learned something: the test has teeth
    assert record["robust_accuracy"] <= record["attacks"]["pgd-3"]["robust_accuracy"]
    # the CLI reports exactly what the API computes
    direct = evaluate(model, data.load("digits", split="test"),
                      attacks=["clean", "pgd-3", "rays-50"], eps=16 / 255, n_examples=40)
    for spec in ("clean", "pgd-3", "rays-50"):
        assert record["attacks"][spec]["robust_accuracy"] == \
            direct["attacks"][spec]["robust_accuracy"]


def test_eval_checkpoint_file_with_out_and_data(run_dir, tmp_path):
    root, _ = run_dir
    out = tmp_path / "sub" / "record.json"
    rc = cli.main(["eval", str(root / "checkpoints" / "best.pt"), "--data", "digits",
                   "--attacks", "fgsm", "--eps", "0.05", "--n-examples", "10",
                   "--out", str(out)])
    assert rc == 0
    record = json.loads(out.read_text())
    assert list(record["attacks"]) == ["fgsm"] and record["n"] == 10


def test_eval_errors_exit_nonzero(run_dir, tmp_path, capsys):
    root, _ = run_dir
    assert cli.main(["eval", str(root), "--attacks", "pgd50", "--n-examples", "4",
                     "--out", str(tmp_path / "x.json")]) == 2
    assert "unknown attack spec" in capsys.readouterr().err
    assert cli.main(["eval", str(tmp_path / "missing")]) == 2
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["eval", str(root), "--eps", "-1"])
    assert exit_info.value.code == 2  # argparse's usage error


def test_parse_eps():
    assert parse_eps("8/255") == pytest.approx(8 / 255)
    assert parse_eps("0.031") == pytest.approx(0.031)
    for bad in ("x", "1/0", "-0.1", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_eps(bad)


def test_eps_defaults_to_the_trained_radius(run_dir, tmp_path):
    root, model = run_dir
    for config, expected in (({"val_eps": 0.2, "method": {"eps": 0.2}}, 0.2),
                             ({"method": {"method": "fast_at", "eps": 0.1}}, 0.1),
                             ({}, 8 / 255)):
        path = tmp_path / "best.pt"
        torch.save({"model_state": model.state_dict(), "model_spec": _spec(),
                    "dataset": "digits", "epoch": 3, "config": config}, path)
        out = tmp_path / "record.json"
        assert cli.main(["eval", str(path), "--attacks", "clean", "--n-examples", "8",
                         "--device", "cpu", "--out", str(out)]) == 0
        assert json.loads(out.read_text())["eps"] == pytest.approx(expected)
