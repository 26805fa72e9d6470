"""One training step of every method and of standard training, as pytest-benchmark rows: per
setting of the device (step_cases.SETTINGS), the fused backend and the reference, eager and
compiled (and CUDA-graphed on a GPU), then each method's step with its official code's pass
structure. extra_info holds the counted passes, images/s and the ratios of step_cases.py
(Bench.row). Select rows with -k, e.g. ``-k "small_cnn and fast_at"``; FASTADV_BENCH_ALL=1
adds the slow CPU rows (step_cases.default_cases)."""
import pytest

import official_steps
from conftest import DEVICES, record
from step_cases import bench, default_cases, settings

SETTINGS = [s for device in DEVICES for s in settings(device)]
STEP_CASES = [(s, *case) for s in SETTINGS for case in default_cases(s)]
OFFICIAL_CASES = [(s, name) for s in SETTINGS for name in official_steps.STEPS]


def rounds(setting) -> int:
    """Timed rounds: PreActResNet-18 steps take seconds on CPU, so one there."""
    if setting.device == "cuda":
        return 10
    return 3 if setting.model == "small_cnn" else 1


@pytest.mark.parametrize("setting,method,backend,mode", STEP_CASES,
                         ids=[f"{s.name}-{m}-{b}-{mode}" for s, m, b, mode in STEP_CASES])
def test_step(benchmark, setting, method, backend, mode):
    b = bench(setting)
    fn = b.step(method, backend, mode)
    b.warm(fn, mode)
    benchmark.pedantic(fn, rounds=rounds(setting), iterations=1)
    record(benchmark, setting.device, **b.row(method, backend, mode,
                                              benchmark.stats.stats.median))


@pytest.mark.parametrize("setting,method", OFFICIAL_CASES,
                         ids=[f"{s.name}-{m}-official" for s, m in OFFICIAL_CASES])
def test_official_step(benchmark, setting, method):
    b = bench(setting)
    fn = b.official(method)
    b.warm(fn, "eager")
    benchmark.pedantic(fn, rounds=rounds(setting), iterations=1)
    record(benchmark, setting.device, **b.row(method, "official", "official",
                                              benchmark.stats.stats.median))
