"""fastadv.evaluate(): closed-form accuracy, worst-case aggregation, mode restoring, data
sources, sanity warnings and bad input."""
import json
import warnings
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fastadv import evaluate

from tests.helpers import TwoClassLinear, linear_problem, net_batch, small_net


def net_data(model, n=40, seed=1):
    x, y = net_batch(model.eval(), n=n, seed=seed)
    y[:3] = (y[:3] + 1) % 10  # a few clean errors
    return x, y


def test_linear_model_closed_form_pgd_and_rays():
    eps = 0.05
    model, x, y, dist = linear_problem(eps, n=40)
    y = y.clone()
    y[:4] = 1 - y[:4]  # misclassified clean: non-robust, RayS distance 0
    exact = dist.clone()
    exact[:4] = 0.0
    record = evaluate(model, (x, y), attacks=["clean", "pgd-10", "rays-400"], eps=eps,
                      batch_size=16)
    n = len(y)
    assert record["n"] == n
    assert record["clean_accuracy"] == pytest.approx((n - 4) / n)
    expected_robust = float((exact > eps).float().mean())
    assert 0 < expected_robust < record["clean_accuracy"]
    assert record["attacks"]["pgd-10"]["robust_accuracy"] == pytest.approx(expected_robust)
    assert record["attacks"]["rays-400"]["robust_accuracy"] == pytest.approx(expected_robust)
    assert record["attacks"]["rays-400"]["adbd"] == pytest.approx(float(exact.mean()), rel=0.02)
    assert record["robust_accuracy"] == pytest.approx(expected_robust)
    json.dumps(record)  # JSON-serializable


def test_worst_case_never_exceeds_any_attack_and_is_pointwise():
    model = small_net()
    x, y = net_data(model)
    record = evaluate(model, (x, y), attacks="clean,fgsm,pgd-3,rays-60", eps=0.04, seed=1)
    accuracies = [a["robust_accuracy"] for a in record["attacks"].values()]
    assert record["robust_accuracy"] <= min(accuracies) + 1e-12
    assert record["robust_accuracy"] <= record["clean_accuracy"]
    assert record["clean_accuracy"] < 1.0
    # each attack's number is its own: pgd-3 alone scores exactly as it did among the others
    single = evaluate(model, (x, y), attacks=["pgd-3"], eps=0.04, seed=1)
    assert single["robust_accuracy"] == record["attacks"]["pgd-3"]["robust_accuracy"]


def test_more_restarts_never_raise_robust_accuracy():
    model = small_net(seed=3)
    x, y = net_data(model, n=48)
    record = evaluate(model, (x, y), attacks=["pgd-2-1", "pgd-2-3", "pgd-2-6"], eps=0.03)
    acc = [record["attacks"][k]["robust_accuracy"] for k in ("pgd-2-1", "pgd-2-3", "pgd-2-6")]
    assert acc[0] >= acc[1] >= acc[2]
    assert acc[2] < acc[0]  # the restarts do break more points: the ordering has teeth


class ModeProbe(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = small_net()
        self.seen = set()

    def forward(self, x):
        self.seen.add(self.training)
        self.seen.update(m.training for m in self.body.modules())
        return self.body(x)


@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
def test_evaluate_runs_in_eval_mode_and_restores_modes(mode):
    model = ModeProbe()
    x, y = net_data(model.body, n=8)
    model.train(mode != "eval")
    if mode == "mixed":
        model.body[1].eval()
    before = [m.training for m in model.modules()]
    evaluate(model, (x, y), attacks=["clean", "pgd-1"], eps=0.02)
    assert model.seen == {False}
    assert [m.training for m in model.modules()] == before


def test_modes_restored_when_evaluation_fails():
    model = small_net().train()
    x, y = net_data(model, n=8)
    model.train()
    y[0] = 42
    with pytest.raises(ValueError, match="labels out of range"):
        evaluate(model, (x, y))
    assert model.training


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


def test_seeded_evaluation_is_reproducible():
    model = small_net()
    x, y = net_data(model)
    a = evaluate(model, (x, y), attacks=["pgd-1-2"], eps=0.05, seed=7)
    b = evaluate(model, (x, y), attacks=["pgd-1-2"], eps=0.05, seed=7)
    assert a["robust_accuracy"] == b["robust_accuracy"]


def test_transfer_and_gradient_masking_warning():
    eps = 0.05
    model, x, y, dist = linear_problem(eps, n=40)
    masked = TwoClassLinear(model.w.detach(), float(model.b.detach()), masked_gradient=True)
    with pytest.warns(RuntimeWarning, match="gradient masking"):
        record = evaluate(masked.eval(), (x, y), attacks=["pgd-5", "transfer-8"], eps=eps,
                          surrogate=model)
    exact = float((dist > eps).float().mean())
    assert record["attacks"]["transfer-8"]["robust_accuracy"] == pytest.approx(exact)
    assert record["attacks"]["pgd-5"]["robust_accuracy"] > exact
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an honest model raises no warning
        evaluate(model, (x, y), attacks=["pgd-5", "transfer-8"], eps=eps, surrogate=model)


class Softmaxed(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = small_net()

    def forward(self, x):
        return self.body(x).softmax(dim=1)


class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = small_net()

    def forward(self, x):
        return self.body(x) + 0.1 * torch.randn(x.shape[0], 10)


@pytest.mark.parametrize("model, match", [(Softmaxed, "probabilities"), (Noisy, "randomized")])
def test_sanity_warnings(model, match):
    model = model()
    x, y = net_data(model.body, n=8)
    with pytest.warns(RuntimeWarning, match=match):
        evaluate(model, (x, y), attacks=["clean"])


def test_inputs_outside_the_box_warn():
    model = small_net()
    x, y = net_data(model, n=8)
    with pytest.warns(RuntimeWarning, match=r"outside \[0, 1\]"):
        evaluate(model, ((x - 0.5) / 0.25, y), attacks=["clean"])


def test_autoattack_record_has_package_version():
    pytest.importorskip("pyautoattack")
    model = small_net(seed=2)
    x, y = net_data(model, n=6)
    record = evaluate(model, (x, y), attacks=["clean", "autoattack"], eps=0.3)
    entry = record["attacks"]["autoattack"]
    assert record["versions"]["pyautoattack"] == entry["package_version"]
    assert entry["version"] == "standard"
    assert entry["robust_accuracy"] <= record["clean_accuracy"]
    assert record["robust_accuracy"] == entry["robust_accuracy"]


def test_bad_inputs():
    model = small_net()
    x, y = net_data(model, n=8)
    with pytest.raises(ValueError, match="eps"):
        evaluate(model, (x, y), eps=-0.1)
    with pytest.raises(ValueError, match="unknown attack spec 'pgd50'"):
        evaluate(model, (x, y), attacks=["pgd50"])
    with pytest.raises(ValueError, match="labels out of range"):
        evaluate(model, (x, torch.full_like(y, 10)))
    with pytest.raises(ValueError, match="labels out of range"):
        evaluate(model, (x, torch.full_like(y, -1)))
    with pytest.raises(ValueError, match="mismatched lengths"):
        evaluate(model, (x, y[:5]))
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, (x[:0], y[:0]))
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, DataLoader(TensorDataset(x[:0], y[:0]), batch_size=4))
    with pytest.raises(TypeError, match="unknown evaluate"):
        evaluate(model, (x, y), stepsize=0.1)
    with pytest.raises(ValueError, match="surrogate"):
        evaluate(model, (x, y), attacks=["transfer"])
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(model, (x, y), batch_size=0)
    with pytest.raises(ValueError, match="n_examples"):
        evaluate(model, (x, y), n_examples=0)
    with pytest.raises(TypeError, match="data"):
        evaluate(model, "not data")
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        evaluate(model, [(x.tolist(), y)])  # a loader whose batches are not tensors
    with pytest.raises(TypeError, match="model"):
        evaluate("not a model", (x, y))
