"""train()'s inputs (issue 10): what it refuses before any step, with a message naming the
argument and what to do, and what it accepts (float64/float16 pixels, dict batches)."""
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fastadv
from tests.training.helpers import tiny_data, tiny_model

QUICK = dict(epochs=1, batch_size=8, progress=False, val_size=0)


def one_gpu(monkeypatch):
    """Pretend this machine has exactly one CUDA GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


@pytest.mark.parametrize("case,error,match", [
    ("val_size_float_count", ValueError, r"val_size=2\.0 is a float >= 1.*count must be an int"),
    ("val_size_one", ValueError, r"val_size=1\.0 is a float >= 1"),
    ("val_size_str", TypeError, r"val_size must be a fraction in \(0, 1\) or an int count"),
    ("device_missing", ValueError, r"device='cuda:7' does not exist.*available: cpu"),
    ("device_name", ValueError, r"device must name a torch device.*'gpu'"),
    ("device_type", TypeError, r"device must be a str or torch.device, got float"),
    ("rank_3", ValueError, r"train_data\[0\] must be a batch of images of shape \(N, C, H, W\), "
                           r"got shape \(32, 6, 6\); add the channel dimension"),
    ("rank_2", ValueError, r"must be a batch of images of shape \(N, C, H, W\), got shape"),
    ("val_rank_3", ValueError, r"val_data\[0\] must be a batch of images"),
    ("loader_rank_3", ValueError, r"first batch of train_data must be a batch of images"),
])
def test_bad_inputs_are_refused_before_training(case, error, match):
    x, y = tiny_data(n=32)
    data, kwargs = (x, y), {}
    if case == "val_size_float_count":
        kwargs = {"val_size": 2.0}
    elif case == "val_size_one":
        kwargs = {"val_size": 1.0}
    elif case == "val_size_str":
        kwargs = {"val_size": "0.1"}
    elif case == "device_missing":
        kwargs = {"device": "cuda:7"}
    elif case == "device_name":
        kwargs = {"device": "gpu"}
    elif case == "device_type":
        kwargs = {"device": 1.5}
    elif case == "rank_3":
        data = (x[:, 0], y)
    elif case == "rank_2":
        data = (x.flatten(1), y)
    elif case == "val_rank_3":
        kwargs = {"val_data": (x[:8, 0], y[:8])}
    elif case == "loader_rank_3":
        data = DataLoader(TensorDataset(x[:, 0], y), batch_size=8)
    epochs_seen = []
    with pytest.raises(error, match=match):
        fastadv.train(tiny_model(), "standard", data, callback=epochs_seen.append,
                      **{**QUICK, **kwargs})
    assert epochs_seen == []


def test_a_missing_gpu_names_what_is_available(monkeypatch):
    x, y = tiny_data(n=16)
    one_gpu(monkeypatch)
    with pytest.raises(ValueError, match=r"device='cuda:3' does not exist: this machine has 1 "
                                         r"cuda device; available: cpu, cuda:0$"):
        fastadv.train(tiny_model(), "standard", (x, y), device="cuda:3", **QUICK)
    with pytest.raises(ValueError, match=r"device='cuda:3' does not exist.*cpu, cuda:0"):
        fastadv.evaluate(tiny_model(), (x, y), device="cuda:3")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_cuda_is_a_value_error_in_train_and_evaluate():
    x, y = tiny_data(n=16)
    for call in (lambda: fastadv.train(tiny_model(), "standard", (x, y), device="cuda", **QUICK),
                 lambda: fastadv.evaluate(tiny_model(), (x, y), device="cuda")):
        with pytest.raises(ValueError, match=r"device='cuda' does not exist: this machine has "
                                             r"no cuda device.*; available: cpu"):
            call()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_other_float_precisions_are_cast_to_float32(dtype):
    """float64 (numpy's default) and float16 pixels train exactly as float32 ones do."""
    x, y = tiny_data(n=32)
    x = (x * 16).round() / 16  # exactly representable in float16, so the cast loses nothing
    states = []
    for data in ((x, y), (x.to(dtype), y),
                 DataLoader(TensorDataset(x.to(dtype), y), batch_size=8)):
        if isinstance(data, DataLoader):
            states.append(None)  # a loader's batches: only that they train
            fastadv.train(tiny_model(), "standard", data, **QUICK)
            continue
        model = tiny_model()
        fastadv.train(model, "fast_at", data, method_options={"eps": 0.1}, **QUICK)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@pytest.mark.parametrize("image_key,label_key", [("x", "y"), ("image", "label"),
                                                 ("images", "labels")])
def test_dict_batches_with_each_documented_key(image_key, label_key):
    x, y = tiny_data(n=32)
    batches = [{image_key: x[i:i + 8], label_key: y[i:i + 8], "id": i} for i in range(0, 32, 8)]
    result = fastadv.train(tiny_model(), "standard", batches, **QUICK)
    assert len(result.history) == 1 and result.history[0]["train_loss"] > 0


def test_a_bad_label_in_a_later_dict_batch_names_the_batch():
    x, y = tiny_data(n=32)
    y[27] = 5  # batch 3 of 4; the first batch, checked up front, is fine
    batches = [{"image": x[i:i + 8], "label": y[i:i + 8]} for i in range(0, 32, 8)]
    with pytest.raises(ValueError, match=r"labels of batch 3 of train_data must lie in \[0, 3\), "
                                         r"got labels in \[0, 5\]"):
        fastadv.train(tiny_model(), "standard", batches, **QUICK)


@pytest.mark.parametrize("source", ["tensors", "image_data", "val_data"])
def test_labels_that_can_be_read_up_front_are_checked_before_the_first_step(source, monkeypatch):
    x, y = tiny_data(n=40)
    steps = []
    model = tiny_model()
    monkeypatch.setattr(model, "forward", _counting(model.forward, steps))
    kwargs = dict(QUICK)
    if source == "tensors":
        y = y.clone()
        y[-1] = 3  # the last point: a batch-by-batch check would find it only at the end
        data = (x, y)
    elif source == "image_data":
        data = fastadv.data.load("digits").subset(range(48))
        model = tiny_model(classes=10, size=8)
        data.y[-1] = 10  # ImageData itself refuses this at construction; bypass it
        monkeypatch.setattr(model, "forward", _counting(model.forward, steps))
    else:
        data = (x, y)
        kwargs["val_data"] = (x[:8], torch.full_like(y[:8], 4))
    with pytest.raises(ValueError, match="labels"):
        fastadv.train(model, "standard", data, **kwargs)
    assert len(steps) <= 1  # only check_model_output's forward on two images ran


def _counting(forward, calls):
    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)
    return counted


def test_a_model_ending_in_softmax_warns_like_evaluate():
    x, y = tiny_data(n=16)
    model = nn.Sequential(tiny_model(), nn.Softmax(dim=1))
    with pytest.warns(RuntimeWarning, match="look like probabilities.*remove the final softmax") \
            as caught:
        fastadv.train(model, "standard", (x, y), **QUICK)
    assert caught[0].filename == __file__  # points at the caller's line, not at fastadv
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # logits: no warning
        fastadv.train(tiny_model(), "standard", (x, y), **QUICK)
