"""What evaluate() accepts as data (fastadv.evaluation.inputs): tensors, uint8 tensors,
ImageData and loaders give the same record; n_examples takes the first points; bad data,
bad labels and bad pixels (NaN, outside [0, 1]) raise before any attack runs."""
import math
from dataclasses import dataclass

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fastadv import evaluate

from tests.helpers import net_data, small_net


@dataclass
class FakeImageData:  # the fastadv.data.ImageData contract: uint8 x, int64 y
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int = 10


def test_data_sources_agree_and_n_examples_takes_the_first_points():
    model = small_net()
    x, y = net_data(model, n=30)
    x8 = (x * 255).round().to(torch.uint8)
    xf = x8.float() / 255
    kwargs = dict(attacks=["clean", "pgd-2"], eps=0.03, n_examples=20)
    ref = evaluate(model, (xf, y), **kwargs)
    loader = DataLoader(TensorDataset(xf, y), batch_size=7, shuffle=False)
    for source in ((x8, y), FakeImageData(x8, y), loader):
        other = evaluate(model, source, **kwargs)
        assert other["n"] == 20
        assert other["attacks"] == {k: {**v, "seconds": other["attacks"][k]["seconds"]}
                                    for k, v in ref["attacks"].items()}
    assert ref["clean_accuracy"] == evaluate(model, (xf[:20], y[:20]),
                                             attacks=["clean"])["clean_accuracy"]


class TrainingLoader:
    """A loader in training mode (fastadv.data.DeviceLoader's train=True)."""
    train = True

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        yield self.x, self.y


def test_a_training_loader_warns():
    model = small_net()
    x, y = net_data(model, n=8)
    with pytest.warns(RuntimeWarning, match="train=True"):
        evaluate(model, TrainingLoader(x, y), attacks=["clean"])


def with_nan(x):
    x = x.clone()
    x[2, 0, 1, 1] = math.nan
    return x


@pytest.mark.parametrize("bad_x, match", [
    (with_nan, "x contains NaN"),
    (lambda x: (x - 0.5) / 0.25, r"x must lie in \[0, 1\]"),  # normalized images
    (lambda x: x.masked_fill(x > 0.9, math.inf), r"x must lie in \[0, 1\]"),
])
@pytest.mark.parametrize("source", ["tensors", "loader"])
def test_bad_pixels_raise_before_any_attack(bad_x, match, source):
    model = small_net()
    x, y = net_data(model, n=8)
    x = bad_x(x)
    data = (x, y) if source == "tensors" else DataLoader(TensorDataset(x, y), batch_size=3)
    for attacks in (["clean"], ["pgd-2", "rays-10"]):
        with pytest.raises(ValueError, match=match):
            evaluate(model, data, attacks=attacks)


def test_modes_restored_when_evaluation_fails():
    model = small_net().train()
    x, y = net_data(model, n=8)
    model.train()
    y[0] = 42
    with pytest.raises(ValueError, match=r"y must lie in \[0, 10\), got labels in \[\d+, 42\]"):
        evaluate(model, (x, y))
    assert model.training


def test_bad_data():
    model = small_net()
    x, y = net_data(model, n=8)
    with pytest.raises(ValueError, match=r"y must lie in \[0, 10\)"):
        evaluate(model, (x, torch.full_like(y, 10)))
    with pytest.raises(ValueError, match=r"y must lie in \[0, 10\), got labels in \[-1, -1\]"):
        evaluate(model, (x, torch.full_like(y, -1)))
    with pytest.raises(TypeError, match="integer"):
        evaluate(model, (x, y.float()))
    with pytest.raises(TypeError, match="integer"):
        evaluate(model, DataLoader(TensorDataset(x, y.float()), batch_size=4))
    with pytest.raises(ValueError, match="1-D"):
        evaluate(model, (x, y[:, None]))
    with pytest.raises(ValueError, match="mismatched lengths"):
        evaluate(model, (x, y[:5]))
    with pytest.raises(ValueError, match="mismatched lengths"):
        evaluate(model, (x, y[:5]), n_examples=4)  # the first 4 of each would hide it
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, (x[:0], y[:0]))
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, DataLoader(TensorDataset(x[:0], y[:0]), batch_size=4))
    with pytest.raises(ValueError, match="n_examples"):
        evaluate(model, (x, y), n_examples=0)
    with pytest.raises(TypeError, match="n_examples"):
        evaluate(model, (x, y), n_examples=2.0)
    with pytest.raises(TypeError, match="data"):
        evaluate(model, "not data")
    with pytest.raises(TypeError, match=r"data must yield \(x, y\) batches"):
        evaluate(model, [x])
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        evaluate(model, [(x.tolist(), y)])  # a loader whose batches are not tensors
