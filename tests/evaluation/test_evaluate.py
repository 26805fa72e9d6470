"""fastadv.evaluate(): closed-form accuracy, worst-case aggregation, mode restoring,
reproducibility, the record, and bad arguments (data sources and bad data:
test_inputs.py; warnings: test_sanity.py; spec grammar: test_specs.py)."""
import json

import pytest
import torch
from torch import nn

import fastadv
from fastadv import evaluate

from tests.helpers import linear_problem, net_data, small_net


def test_fastadv_evaluate_is_the_function():
    assert callable(fastadv.evaluate) and fastadv.evaluate is fastadv.evaluation.evaluate


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
    assert record["attacks"]["pgd-10"]["alpha"] == pytest.approx(eps / 4)
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


def test_seeded_evaluation_is_reproducible():
    model = small_net()
    x, y = net_data(model)
    a = evaluate(model, (x, y), attacks=["pgd-1-2"], eps=0.05, seed=7)
    b = evaluate(model, (x, y), attacks=["pgd-1-2"], eps=0.05, seed=7)
    assert a["robust_accuracy"] == b["robust_accuracy"]


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


class NotLogits(nn.Module):
    def __init__(self, output):
        super().__init__()
        self.output = output

    def forward(self, x):
        return self.output(x)


def test_bad_arguments():
    model = small_net()
    x, y = net_data(model, n=8)
    with pytest.raises(ValueError, match="eps"):
        evaluate(model, (x, y), eps=-0.1)
    with pytest.raises(ValueError, match="8/255, not 8"):
        evaluate(model, (x, y), eps=8)
    with pytest.raises(ValueError, match="eps must be <= 1"):
        evaluate(model, (x, y), eps=1.5)
    with pytest.raises(TypeError, match="eps"):
        evaluate(model, (x, y), eps="8/255")
    with pytest.raises(ValueError, match="unknown attack spec 'pgd50'"):
        evaluate(model, (x, y), attacks=["pgd50"])
    with pytest.raises(TypeError, match="unknown evaluate"):
        evaluate(model, (x, y), stepsize=0.1)
    with pytest.raises(ValueError, match="surrogate"):
        evaluate(model, (x, y), attacks=["transfer"])
    with pytest.raises(TypeError, match="surrogate"):
        evaluate(model, (x, y), attacks=["transfer"], surrogate="not a model")
    with pytest.raises(ValueError, match="alpha"):
        evaluate(model, (x, y), alpha=-1.0)
    with pytest.raises(ValueError, match="loss"):
        evaluate(model, (x, y), loss="hinge")
    with pytest.raises(ValueError, match="autoattack_version"):
        evaluate(model, (x, y), autoattack_version="fast")
    with pytest.raises(TypeError, match="rays_early_stop"):
        evaluate(model, (x, y), rays_early_stop=1)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(model, (x, y), batch_size=0)
    with pytest.raises(ValueError, match="seed"):
        evaluate(model, (x, y), seed=-1)
    with pytest.raises(ValueError, match="device must name a torch device"):
        evaluate(model, (x, y), device="gpu0")
    with pytest.raises(TypeError, match="device"):
        evaluate(model, (x, y), device=1.5)
    with pytest.raises(TypeError, match="model"):
        evaluate("not a model", (x, y))
    with pytest.raises(TypeError, match="tensor of logits"):
        evaluate(NotLogits(lambda x: x.tolist()), (x, y), attacks=["clean"])
    with pytest.raises(ValueError, match=r"logits of shape \[batch, classes\]"):
        evaluate(NotLogits(lambda x: x.flatten(1).sum(1)), (x, y), attacks=["clean"])
