"""fastadv.train(): schedules, exact resume, atomic checkpoints, the overfitting guard, the
run directory, bad inputs, and end to end on the bundled digits (robust methods beat
standard training by >= 30 PGD-20 points at eps = 0.2; Backward Smoothing and TRADES end
ahead of Fast AT)."""
import json
import math

import pytest
import torch
from torch import nn

import fastadv
from fastadv import checkpoint as ckpt
from fastadv._train_eval import clean_and_pgd_accuracy
from fastadv._train_schedules import LRSchedule
from fastadv.train import TrainResult


def tiny_model(classes=3, channels=1, size=6):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * size * size, classes))


def tiny_data(n=96, classes=3, channels=1, size=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.rand(n, channels, size, size, generator=g) * 0.5
    x[:, :, : size // 2] += 0.4 * (y[:, None, None, None] == 1)  # learnable signal
    x[:, :, size // 2:] += 0.4 * (y[:, None, None, None] == 2)
    return x.clamp(0, 1), y


FAST = dict(batch_size=16, lr=0.05, progress=False, val_size=16)


# ---------------------------------------------------------------- schedules
def test_cyclic_schedule_is_a_triangle_with_configurable_peak():
    s = LRSchedule("cyclic", 0.2, epochs=10, iterations_per_epoch=10, peak=0.4)
    lrs = [s(i) for i in range(100)]
    top = max(range(100), key=lambda i: lrs[i])
    assert top in (39, 40) and lrs[top] == pytest.approx(0.2, rel=0.02)
    assert lrs[0] < 0.01 and lrs[-1] < 0.01 and min(lrs) > 0
    assert all(a < b for a, b in zip(lrs[:39], lrs[1:40]))
    assert all(a > b for a, b in zip(lrs[41:], lrs[42:]))


def test_piecewise_and_cosine_schedules():
    s = LRSchedule("piecewise", 0.1, epochs=4, iterations_per_epoch=5, milestones=(2, 3), decay=0.1)
    assert [s(i) for i in (0, 9, 10, 14, 15, 19)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    c = LRSchedule("cosine", 1.0, epochs=1, iterations_per_epoch=100)
    assert c(0) == pytest.approx(1.0, abs=1e-3) and c(49) == pytest.approx(0.5, abs=0.02)
    assert c(99) < 1e-3
    with pytest.raises(ValueError, match="schedule"):
        LRSchedule("step", 0.1, epochs=1, iterations_per_epoch=1)


# ---------------------------------------------------------------- run directory, resume
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


# ---------------------------------------------------------------- guard, callback, options
def test_overfitting_guard_restores_previous_weights_and_stops(monkeypatch):
    from fastadv import _train_guard

    accuracies = iter([0.6, 0.5, 0.1, 0.9])
    monkeypatch.setattr(_train_guard, "clean_and_pgd_accuracy",
                        lambda *a, **k: (1.0, next(accuracies)))
    saved = []
    x, y = tiny_data()
    model = tiny_model()
    result = fastadv.train(model, "fast_at", (x, y), epochs=4, method_options={"eps": 0.1},
                           callback=lambda r: saved.append(
                               {k: v.clone() for k, v in model.state_dict().items()}),
                           **{**FAST, "val_size": 0})
    assert [h["guard_triggered"] for h in result.history] == [False, False, True]
    assert result.stopped_early and len(result.history) == 3
    for k, v in model.state_dict().items():  # epoch 2's weights are back
        assert torch.equal(v, saved[1][k]), k


def test_guard_is_configurable_and_off_by_default_for_other_methods():
    x, y = tiny_data(n=48)
    r = fastadv.train(tiny_model(), "standard", (x, y), epochs=1, **{**FAST, "val_size": 0})
    assert "guard_robust_accuracy" not in r.history[0]
    r = fastadv.train(tiny_model(), "standard", (x, y), epochs=1, guard=True,
                      **{**FAST, "val_size": 0})
    assert 0 <= r.history[0]["guard_robust_accuracy"] <= 1
    r = fastadv.train(tiny_model(), "fast_at", (x, y), epochs=1, guard=False,
                      **{**FAST, "val_size": 0})
    assert "guard_robust_accuracy" not in r.history[0]


def test_callback_optimizer_clipping_and_dataloader():
    x, y = tiny_data(n=64)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16,
                                         shuffle=True)
    seen = []
    model = tiny_model()
    result = fastadv.train(model, "pgd2_at", loader, epochs=2, optimizer=torch.optim.Adam,
                           lr=1e-3, schedule="constant", grad_clip=1.0, progress=False,
                           val_data=(x[:16], y[:16]), callback=seen.append,
                           method_options={"eps": 0.1})
    assert [r["epoch"] for r in seen] == [1, 2] and seen[-1]["lr"] == pytest.approx(1e-3)
    assert "val_robust_accuracy" in seen[-1]
    assert result.model is model


def test_fastadv_train_is_the_function_even_after_importing_the_module():
    import importlib
    import inspect

    module = importlib.import_module("fastadv.train")
    import fastadv.train  # noqa: F401  (re-imports must not rebind the attribute either)
    assert inspect.ismodule(module)
    assert fastadv.train is module.train and fastadv.evaluate is not None
    x, y = tiny_data(n=32)
    result = fastadv.train(tiny_model(), "standard", (x, y), epochs=1, batch_size=16,
                           progress=False, val_size=0)
    assert len(result.history) == 1


# ---------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("case,match", [
    ("labels_out_of_range", "labels"),
    ("negative_labels", "labels"),
    ("empty", "empty"),
    ("eps", "eps"),
    ("method", "available"),
    ("output_shape", "logits"),
    ("classes_mismatch", "num_classes"),
    ("pixels", r"\[0, 1\]"),
    ("epochs", "epochs"),
    ("val_size", "val_size"),
    ("amp", "amp"),
    ("val_eps", "val_eps"),
    ("grad_clip", "grad_clip"),
])
def test_bad_inputs_raise_clear_errors(case, match):
    x, y = tiny_data(n=32)
    model, method, data, kwargs = tiny_model(), "standard", (x, y), {}
    if case == "labels_out_of_range":
        data = (x, torch.full_like(y, 3))
    elif case == "negative_labels":
        data = (x, y - 1)
    elif case == "empty":
        data = (x[:0], y[:0])
    elif case == "eps":
        method, kwargs = "fast_at", {"method_options": {"eps": 2.0}}
    elif case == "method":
        method = "fgsm_magic"
    elif case == "output_shape":
        model = nn.Sequential(nn.Flatten(0))
    elif case == "classes_mismatch":
        digits = fastadv.data.load("digits").subset(range(40))
        data, model = digits, tiny_model(classes=3, size=8)
    elif case == "pixels":
        data = (x * 3, y)
    elif case == "epochs":
        kwargs = {"epochs": 0}
    elif case == "val_size":
        kwargs = {"val_size": 32}
    elif case == "amp":  # a typo is an error on every device, not a warning on CPU
        kwargs = {"amp": "fp32"}
    elif case == "val_eps":
        kwargs = {"val_eps": 1.5}
    elif case == "grad_clip":
        kwargs = {"grad_clip": 0.0}
    kwargs = {"epochs": 1, "batch_size": 8, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        fastadv.train(model, method, data, **kwargs)


# ---------------------------------------------------------------- end to end on digits
# Fast-BAT's a multiplies a raw, un-averaged per-sample input gradient: on CIFAR-10 with
# PreActResNet-18 5000/255 is right, on 8x8 digits with a small CNN the gradient is of
# another size. fastadv.methods.suggest_alpha measured ~8 on a briefly trained digits model
# (and ~190 at initialisation, where CE is flat); a = 8 is used here (README.md, "Defaults that
# do not transfer from CIFAR").
E2E_EPS = 0.2
E2E_EPOCHS = 15
E2E_METHODS = {
    "standard": {},
    "fast_at": {},
    "pgd2_at": {},
    "trades": {"steps": 3, "alpha": 0.08},
    "fast_trades": {},
    "backward_smoothing": {},
    "fast_bat": {"alpha": 8.0},
    # reg: 0.02*10**(eps*255/8) is fitted to CIFAR radii (4.7e4 at 0.2). The default zero-start
    # FGSM of step eps gave 31% PGD-20 here, one point above the bar; the random start with a
    # 1.25*eps step (Fast AT's, also run with GradAlign in its paper) gives 39%.
    "grad_align": {"reg": 0.1, "init": "uniform", "alpha": 0.25},
}


@pytest.fixture(scope="module")
def e2e_results():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny 8x8 batches: threads only add contention
    train = fastadv.data.load("digits")
    test = fastadv.data.load("digits", split="test")
    x_test, y_test = test.x.float() / 255, test.y
    results = {}
    for name, options in E2E_METHODS.items():
        torch.manual_seed(0)
        model = fastadv.models.get("small_cnn", in_channels=1, mean=train.mean, std=train.std,
                                   width=16, batch_norm=True)
        fastadv.train(model, name, train, epochs=E2E_EPOCHS, batch_size=64, lr=0.1,
                      progress=False, val_size=0, method_options={"eps": E2E_EPS, **options})
        results[name] = clean_and_pgd_accuracy(model, x_test, y_test, eps=E2E_EPS, steps=20)
    torch.set_num_threads(threads)
    return results


@pytest.mark.parametrize("name", [n for n in E2E_METHODS if n != "standard"])
def test_e2e_robust_methods_beat_standard_training(e2e_results, name):
    standard_robust = e2e_results["standard"][1]
    assert e2e_results["standard"][0] > 0.9  # standard training itself works
    assert e2e_results[name][1] >= standard_robust + 0.30, e2e_results


def test_e2e_backward_smoothing_and_trades_end_ahead_of_fast_at(e2e_results):
    assert e2e_results["backward_smoothing"][1] > e2e_results["fast_at"][1], e2e_results
    assert e2e_results["trades"][1] > e2e_results["fast_at"][1], e2e_results


def test_pixel_checks_are_skipped_only_for_data_known_to_be_in_range():
    from torch.utils.data import DataLoader, TensorDataset

    from fastadv._train_data import prepare

    digits = fastadv.data.load("digits")
    x, y = digits.x[:64].float() / 255, digits.y[:64]
    kwargs = dict(batch_size=16, val_size=0, val_data=None, device="cpu", seed=0, guard_size=8)
    assert prepare(digits, **kwargs).pixels_checked  # uint8 source
    assert prepare((x, y), **kwargs).pixels_checked  # checked up front
    assert prepare(fastadv.data.DeviceLoader(digits, 16), **kwargs).pixels_checked
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    assert not prepare(loader, **kwargs).pixels_checked  # arbitrary batches: ops check each


def test_dataloader_labels_out_of_range_are_named():
    from torch.utils.data import DataLoader, TensorDataset

    x, y = tiny_data(n=32)
    y[5] = 7
    loader = DataLoader(TensorDataset(x, y), batch_size=32)
    with pytest.raises(ValueError, match=r"labels of the first batch must lie in \[0, 3\)"):
        fastadv.train(tiny_model(), "standard", loader, epochs=1, progress=False)
