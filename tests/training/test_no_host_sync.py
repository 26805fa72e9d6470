"""No host synchronisation inside a training step: a few steps of every method run under the
value-read watcher of tests/value_reads.py (watching every tensor), around exactly what train()
runs per batch on the device: the step (LR, zero_grad, method.loss, backward, clipping,
optimizer step) and the metric update. Nothing may read a tensor value: no .item(), no
bool(tensor), no value check, no host copy. The one read allowed is random_start's seed, an
int drawn from the CPU generator (a host RNG draw, not a device sync; under CUDA graphs it is
not drawn at all, fastadv.ops.random_start).

Batches come from train()'s own device-side loaders: the (x, y) tensor batches and the
DeviceLoader of an ImageData (the batches of an arbitrary user DataLoader are checked on the
host by design, before they reach the device: training.data). The metrics are read once per
epoch (EpochMeter.read), which the last test counts. The same steps under
torch.cuda.set_sync_debug_mode("error") are in tests/gpu/test_gpu_training.py.
"""
import pytest
import torch
from torch import nn

import fastadv
from fastadv import methods
from fastadv.data import DeviceLoader, ImageData
from fastadv.training.compiled import StepOptions, TrainingStep
from fastadv.training.data import TensorBatches
from fastadv.training.metrics import EpochMeter
from fastadv.training.precision import Precision
from tests.training.helpers import FAST, tiny_data, tiny_model
from tests.value_reads import any_tensor, watcher

# small enough that every method's step takes milliseconds
OPTIONS = {"pgd_at": {"steps": 2}, "trades": {"steps": 2}, "fast_bat": {"alpha": 0.3}}


def rgb_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 8 * 8, 3))


def rgb_images(n=48):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8), \
        torch.randint(0, 3, (n,), generator=g)


def loaders():
    x, y = rgb_images()
    images = ImageData(x, y, num_classes=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    return {"tensors": TensorBatches(x.float() / 255, y, 8, seed=0),
            "image_data": DeviceLoader(images, 8, train=True, device="cpu", seed=0)}


# every method on an ImageData's DeviceLoader (crop + flip on the device), two on tensors
CASES = [(name, "image_data") for name in methods.available()] + \
    [("fast_at", "tensors"), ("fast_bat", "tensors")]


def make_step(method):
    model = rgb_net()
    params = list(model.parameters())
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    precision = Precision(None, None, torch.device("cpu"), 3, grad_clip=1.0)
    return TrainingStep(method, model, optimizer, params, precision, StepOptions())


def watched_steps(step, batches, reads, count=2):
    meter = EpochMeter("cpu")
    for _ in range(count):
        x, y = next(batches)
        with reads:
            out = step(x, y, 0.01)
            meter.update(x.shape[0], out.loss, out.logits, y, out.metrics)


@pytest.mark.parametrize("name,source", CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_a_training_step_reads_no_tensor_value(name, source, monkeypatch):
    step = make_step(methods.get(name, eps=0.1, **OPTIONS.get(name, {})))
    batches = iter(loaders()[source])
    step(*next(batches), 0.01)  # the first step may fill caches
    reads = watcher(monkeypatch, watched=any_tensor)
    watched_steps(step, batches, reads)
    assert reads.reads == [], f"{name} read tensor values in its step: {reads.reads}"


class ReadsInItsStep(methods.Standard):
    """Standard training plus a label read in the loss and a gradient read in the backward."""

    def loss(self, model, x, y):
        out = super().loss(model, x, y)
        int(y[0])
        out.logits.register_hook(self.read_gradient)
        return out

    @staticmethod
    def read_gradient(grad):
        bool(grad.abs().sum() > 0)


def test_the_watcher_catches_reads_in_the_loss_and_in_the_backward(monkeypatch):
    step = make_step(ReadsInItsStep())
    batches = iter(loaders()["tensors"])
    reads = watcher(monkeypatch, watched=any_tensor)
    watched_steps(step, batches, reads, count=1)
    assert [what for what, _, _ in reads.reads] == ["aten._local_scalar_dense.default"] * 2
    assert [dtype for _, dtype, _ in reads.reads] == [torch.int64, torch.bool]


def test_the_metrics_are_read_once_per_epoch(monkeypatch):
    x, y = tiny_data()
    reads = []
    original = EpochMeter.read

    def counted(self):
        reads.append(self.count)
        return original(self)

    monkeypatch.setattr(EpochMeter, "read", counted)
    fastadv.train(tiny_model(), "fast_at", (x, y), epochs=2, guard=False,
                  method_options={"eps": 0.1}, **FAST)
    assert len(reads) == 2 and reads[0] == (len(x) - FAST["val_size"]) // FAST["batch_size"] * \
        FAST["batch_size"]
