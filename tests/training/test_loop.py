"""train(): the guard, callbacks, optimizers, data sources and bad inputs."""
import pytest
import torch
from torch import nn

import fastadv
from fastadv.training import Guard, Validation, guard as guard_module
from tests.training.helpers import FAST, tiny_data, tiny_model


def test_overfitting_guard_restores_previous_weights_and_stops(monkeypatch):
    accuracies = iter([0.6, 0.5, 0.1, 0.9])
    monkeypatch.setattr(guard_module, "clean_and_pgd_accuracy",
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
    ("lr", "lr must be > 0"),
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
    elif case == "lr":
        kwargs = {"lr": 0}
    elif case == "grad_clip":
        kwargs = {"grad_clip": 0.0}
    kwargs = {"epochs": 1, "batch_size": 8, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        fastadv.train(model, method, data, **kwargs)


def test_batches_of_an_arbitrary_loader_are_checked_as_they_arrive():
    from torch.utils.data import DataLoader, TensorDataset

    x, y = tiny_data(n=64)
    bad_pixels = x.clone()
    bad_pixels[40] = float("nan")  # in batch 2 of 4
    loader = DataLoader(TensorDataset(bad_pixels, y), batch_size=16)
    with pytest.raises(ValueError, match="images of batch 2 of train_data contains NaN"):
        fastadv.train(tiny_model(), "standard", loader, epochs=1, progress=False)
    bad_labels = y.clone()
    bad_labels[60] = 3  # in batch 3; the first batch is fine
    loader = DataLoader(TensorDataset(x, bad_labels), batch_size=16)
    with pytest.raises(ValueError, match=r"labels of batch 3 of train_data must lie in \[0, 3\)"):
        fastadv.train(tiny_model(), "standard", loader, epochs=1, progress=False)


def test_validation_settings_are_checked_and_used():
    for bad in (dict(eps=1.5), dict(every=0), dict(steps=-1)):
        with pytest.raises(ValueError, match="validation"):
            Validation(**bad)
    with pytest.raises(TypeError, match="validation.every must be an int"):
        Validation(every=1.5)
    x, y = tiny_data(n=64)
    result = fastadv.train(tiny_model(), "standard", (x, y), epochs=3, progress=False,
                           batch_size=16, val_size=16, validation=Validation(every=2, steps=1))
    assert ["val_robust_accuracy" in r for r in result.history] == [False, True, True]
    assert result.config["validation"] == {"every": 2, "steps": 1, "eps": None}


def test_dict_batches_and_guard_objects():
    x, y = tiny_data(n=48)
    batches = [{"image": x[i:i + 16], "label": y[i:i + 16]} for i in range(0, 48, 16)]
    result = fastadv.train(tiny_model(), "fast_at", batches, epochs=1, progress=False,
                           guard=Guard(threshold=0.5, size=8), method_options={"eps": 0.1})
    assert result.config["guard"] == {"threshold": 0.5, "size": 8}
    with pytest.raises(TypeError, match="a dict batch must hold images"):
        fastadv.train(tiny_model(), "standard", [{"pixels": x, "y": y}], epochs=1,
                      progress=False)
    with pytest.raises(TypeError, match="guard must be None, a bool"):
        fastadv.train(tiny_model(), "standard", (x, y), epochs=1, progress=False, guard="on")
    with pytest.raises(ValueError, match="guard.threshold"):
        Guard(threshold=1.5)


def test_dataloader_labels_out_of_range_are_named():
    from torch.utils.data import DataLoader, TensorDataset

    x, y = tiny_data(n=32)
    y[5] = 7
    loader = DataLoader(TensorDataset(x, y), batch_size=32)
    with pytest.raises(ValueError, match=r"labels of the first batch must lie in \[0, 3\)"):
        fastadv.train(tiny_model(), "standard", loader, epochs=1, progress=False)
