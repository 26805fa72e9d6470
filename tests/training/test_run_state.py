"""The run directory, checkpoints and exact resume (fastadv.training.run_state)."""
import json
import math

import pytest
import torch

import fastadv
from fastadv import checkpoint as ckpt
from fastadv.training import TrainResult
from tests.training.helpers import FAST, tiny_data, tiny_model


def test_run_directory_contents(tmp_path):
    x, y = tiny_data()
    result = fastadv.train(tiny_model(), "fast_at", (x, y), epochs=2, run_dir=tmp_path,
                           method_options={"eps": 0.1}, **FAST)
    assert isinstance(result, TrainResult) and len(result.history) == 2
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["method"]["method"] == "fast_at"
    assert config["method"]["alpha"] == pytest.approx(0.125)  # resolved from eps
    records = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for key in ("lr", "train_loss", "train_accuracy", "val_clean_accuracy",
                "val_robust_accuracy", "seconds", "images_per_second", "peak_memory_mb"):
        assert all(math.isfinite(r[key]) for r in records), key
    last = ckpt.load_checkpoint(tmp_path, which="last")
    for key in ("model_state", "model_spec", "dataset", "epoch", "config", "optimizer_state",
                "rng", "iteration"):
        assert key in last
    assert last["epoch"] == 2 and last["iteration"] == 2 * (80 // 16)
    best = ckpt.load_checkpoint(tmp_path, which="best")
    assert best["epoch"] == result.best_epoch


def test_resume_is_bitwise_identical(tmp_path):
    x, y = tiny_data()
    kwargs = dict(epochs=3, method_options={"eps": 0.1}, **FAST)
    full = fastadv.train(tiny_model(), "trades", (x, y), run_dir=tmp_path / "a", **kwargs)

    # interrupted after epoch 1, then resumed in a fresh model
    fastadv.train(tiny_model(), "trades", (x, y), run_dir=tmp_path / "b",
                  callback=lambda record: record["epoch"] < 1, **kwargs)
    assert ckpt.load_checkpoint(tmp_path / "b", which="last")["epoch"] == 1
    torch.manual_seed(12345)  # the resumed run must not depend on the caller's RNG
    resumed = fastadv.train(tiny_model(), "trades", (x, y), resume=tmp_path / "b", **kwargs)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2, 3]
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]


def test_resume_needs_last_checkpoint_and_warns_on_another_method(tmp_path):
    x, y = tiny_data(n=48)
    kwargs = dict(epochs=2, batch_size=16, lr=0.05, progress=False, val_size=16)
    fastadv.train(tiny_model(), "fast_at", (x, y), run_dir=tmp_path / "r",
                  callback=lambda record: False, method_options={"eps": 0.1}, **kwargs)
    with pytest.raises(ValueError, match="not a resumable checkpoint"):
        fastadv.train(tiny_model(), "fast_at", (x, y), method_options={"eps": 0.1},
                      resume=tmp_path / "r" / "checkpoints" / "best.pt", **kwargs)
    with pytest.warns(UserWarning, match="different method"):
        fastadv.train(tiny_model(), "standard", (x, y), resume=tmp_path / "r", **kwargs)


def test_resume_on_the_digits_device_loader(tmp_path):
    digits = fastadv.data.load("digits")
    subset = digits.subset(range(160))
    kwargs = dict(epochs=2, batch_size=32, lr=0.05, progress=False, val_size=32,
                  method_options={"eps": 0.2})

    def model():
        torch.manual_seed(0)
        return fastadv.models.get("small_cnn", in_channels=1, width=4, batch_norm=True)

    full = fastadv.train(model(), "fast_at", subset, run_dir=tmp_path / "a", **kwargs)
    fastadv.train(model(), "fast_at", subset, run_dir=tmp_path / "b",
                  callback=lambda record: False, **kwargs)
    resumed = fastadv.train(model(), "fast_at", subset, resume=tmp_path / "b", **kwargs)
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    # the checkpoint rebuilds the fastadv model by itself
    loaded, info = ckpt.load_model(tmp_path / "a", which="last")
    assert info["dataset"] == "digits" and info["model_spec"]["name"] == "small_cnn"
    for a, b in zip(full.model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_atomic({"model_state": {"w": torch.ones(3)}, "epoch": 1}, path)

    real_save = torch.save

    def crash_midway(obj, handle, *args, **kwargs):
        real_save(obj, handle, *args, **kwargs)
        handle.seek(handle.tell() // 2)
        handle.truncate()  # half the bytes written, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_atomic({"model_state": {"w": torch.zeros(3)}, "epoch": 2}, path)
    monkeypatch.undo()
    state = ckpt.load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["model_state"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


def test_load_model_without_spec_explains(tmp_path):
    x, y = tiny_data(n=40)
    fastadv.train(tiny_model(), "standard", (x, y), epochs=1, run_dir=tmp_path, batch_size=16,
                  progress=False, val_size=0)
    with pytest.raises(ValueError, match="model_spec"):
        ckpt.load_model(tmp_path)
    with pytest.raises(FileNotFoundError):
        ckpt.load_model(tmp_path / "missing")
