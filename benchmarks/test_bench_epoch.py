"""Epochs as pytest-benchmark rows: seconds per epoch of 50,000 synthetic CIFAR images per
method and batch (epoch_cases.py; extra_info says how many steps were timed and that the rest
is extrapolated), on CUDA in bf16 + channels_last, eager and compiled. On CPU one step per
method at batch 128 is timed (a PreActResNet-18 step takes seconds there); batch 512 with
FASTADV_BENCH_ALL=1. Also one whole epoch of the default job (Backward Smoothing, small CNN,
the bundled digits)."""
import pytest
import torch

import fastadv
from conftest import DEVICES, record
from epoch_cases import BATCHES, METHODS, describe, epoch_seconds, synthetic_cifar
from step_cases import RUN_ALL

CASES = []
for _device in DEVICES:
    for _batch in BATCHES if _device == "cuda" or RUN_ALL else BATCHES[:1]:
        for _compile in ((False, True) if _device == "cuda" else (False,)):
            CASES.extend((_device, _batch, _compile, name) for name in METHODS)
_DATA = {}


def data(device):
    if device not in _DATA:
        _DATA[device] = synthetic_cifar(device)
    return _DATA[device]


@pytest.mark.parametrize("device,batch,compile,method", CASES,
                         ids=[f"{d}-b{b}-{'compiled' if c else 'eager'}-{m}"
                              for d, b, c, m in CASES])
def test_epoch(benchmark, device, batch, compile, method):
    fraction = 0.25 if device == "cuda" else 0.0  # 0: one timed step
    result = {}
    benchmark.pedantic(lambda: result.update(epoch_seconds(
        method, batch, device=device, fraction=fraction, compile=compile, data=data(device),
        warmup=2 if device == "cuda" else 1)), rounds=1, iterations=1)
    record(benchmark, device, what="seconds per epoch of 50,000 synthetic CIFAR images",
           **result)
    print("\n" + describe(result))  # says whether the epoch was extrapolated


@pytest.mark.parametrize("device", DEVICES)
def test_epoch_default_job(benchmark, device):
    """One epoch of Backward Smoothing on the bundled digits with the device-resident loader."""
    train_set = fastadv.data.load("digits", split="train")

    def epoch():
        model = fastadv.models.get("small_cnn", num_classes=10, in_channels=1,
                                   mean=train_set.mean, std=train_set.std)
        return fastadv.train(model, "backward_smoothing", train_set, epochs=1, device=device,
                             run_dir=None, progress=False)

    benchmark.pedantic(epoch, rounds=3, iterations=1)
    record(benchmark, device, what="1 epoch, digits, backward_smoothing, small_cnn",
           images=len(train_set), torch_threads=torch.get_num_threads())
