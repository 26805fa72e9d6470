"""One training step per method, next to the network passes no method can avoid, and one
epoch of the default job.

The yardstick "passes" is one clean forward + backward of the same model on the same batch:
a method's step divided by it says how many clean-training steps the method costs. On CPU the
model is the small CNN (a PreActResNet-18 step takes seconds here); on CUDA it is
PreActResNet-18 at batch 128, the papers' setting.
"""
import pytest
import torch

import fastadv
from conftest import DEVICES, record
from fastadv.ops.benchmark import synchronized

METHODS = ["standard", "fast_at", "pgd2_at", "pgd_at", "trades", "fast_trades",
           "backward_smoothing", "fast_bat", "grad_align"]


def setting(device):
    if device == "cuda":
        return "preact_resnet18", 128
    return "small_cnn", 128


def make_model(device):
    name, _ = setting(device)
    torch.manual_seed(0)
    return fastadv.models.get(name, num_classes=10, mean=(0.49, 0.48, 0.45),
                              std=(0.25, 0.24, 0.26)).to(device)


def batch(device):
    _, size = setting(device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(size, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (size,), generator=g).to(device)
    return x, y


@pytest.mark.parametrize("device", DEVICES)
def test_clean_passes_yardstick(benchmark, device):
    model = make_model(device).train()
    x, y = batch(device)

    def step():
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()

    benchmark(synchronized(step, device))
    record(benchmark, device, what="1 forward + 1 backward, clean", model=setting(device)[0],
           batch=len(x))


STEP_CASES = [(d, b) for d in DEVICES for b in ("auto", "reference")]


@pytest.mark.parametrize("device,backend", STEP_CASES, ids=[f"{d}-{b}" for d, b in STEP_CASES])
@pytest.mark.parametrize("method_name", METHODS)
def test_training_step(benchmark, device, backend, method_name):
    """The fused ops ("auto": cpp on CPU, triton on CUDA) against the pure-PyTorch reference,
    on a whole training step: the measure of whether a fused op earns its place."""
    model = make_model(device).train()
    x, y = batch(device)
    method = fastadv.methods.get(method_name, eps=8 / 255)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with fastadv.ops.use_backend(backend):
            method.loss(model, x, y).loss.backward()
        optimizer.step()

    benchmark(synchronized(step, device))
    record(benchmark, device, method=method_name, backend=backend, model=setting(device)[0],
           batch=len(x))


@pytest.mark.parametrize("device", DEVICES)
def test_epoch_default_job(benchmark, device, tmp_path):
    """One epoch of Backward Smoothing on the bundled digits with the device-resident loader."""
    train_set = fastadv.data.load("digits", split="train")

    def epoch():
        model = fastadv.models.get("small_cnn", num_classes=10, in_channels=1,
                                   mean=train_set.mean, std=train_set.std)
        return fastadv.train(model, "backward_smoothing", train_set, epochs=1, device=device,
                             run_dir=None, progress=False)

    benchmark.pedantic(epoch, rounds=3, iterations=1)
    record(benchmark, device, what="1 epoch, digits, backward_smoothing, small_cnn",
           images=len(train_set))
