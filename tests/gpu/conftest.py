"""The GPU cases: marked ``gpu`` (the marker is registered in pyproject.toml) and skipped
where torch sees no CUDA device, so a plain ``python -m pytest`` on a GPU machine runs them
with the rest of the suite, and benchmarks/gpu_check.sh runs them with the op tests' CUDA
cases (``tests/gpu tests/ops -k "gpu or cuda"``)."""
import pytest
import torch


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "tests/gpu/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.gpu)
            if not torch.cuda.is_available():
                item.add_marker(skip)
