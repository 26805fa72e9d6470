"""Backend choice: argument > use_backend context > FASTADV_BACKEND > auto."""
import pytest
import torch

import fastadv.ops as ops
from fastadv.ops import _dispatch


def chosen(backend=None, device="cpu", dtype=torch.float32):
    return _dispatch.resolve("pgd_step", torch.device(device), dtype, backend)[0]


def test_auto_prefers_the_compiled_backend_on_cpu():
    expected = "cpp" if "cpp" in ops.available_backends("cpu") else "reference"
    assert chosen() == expected
    # float64 is served by the reference only: auto falls back silently
    assert chosen(dtype=torch.float64) == "reference"


def test_precedence(monkeypatch):
    monkeypatch.setenv("FASTADV_BACKEND", "reference")
    assert chosen() == "reference"
    with ops.use_backend("auto"):
        assert chosen() == chosen(backend="auto")
        with ops.use_backend("reference"):
            assert chosen() == "reference"
            assert chosen(backend="auto") in ops.available_backends("cpu")
    monkeypatch.setenv("FASTADV_BACKEND", "nonsense")
    with pytest.raises(ValueError, match="FASTADV_BACKEND='nonsense'"):
        chosen()


def test_context_is_restored_after_errors():
    with pytest.raises(KeyError):
        with ops.use_backend("reference"):
            raise KeyError
    assert _dispatch.requested_backend(None) == "auto"


def test_available_backends_lists_auto_candidates_first():
    names = ops.available_backends("cpu")
    assert "reference" in names and "auto" not in names
    auto_candidates = [b for b in ("cpp", "reference") if b in names]
    assert list(names[:len(auto_candidates)]) == auto_candidates


def test_backend_results_agree_through_the_context():
    x = torch.rand(4, 3, 8, 8)
    g = torch.randn_like(x)
    results = []
    for name in ops.available_backends("cpu"):
        with ops.use_backend(name):
            results.append(ops.pgd_step(x, g, x, alpha=0.01, eps=0.02))
    for r in results[1:]:
        torch.testing.assert_close(r, results[0])


def test_available_backends_rejects_bad_devices():
    with pytest.raises(ValueError, match="device 'tpu' is not a torch device"):
        ops.available_backends("tpu")
    with pytest.raises(TypeError, match="device must be a torch.device"):
        ops.available_backends(3.5)
    assert ops.available_backends(torch.device("cpu")) == ops.available_backends("cpu")


def test_cuda_backend_stays_out_on_gpus_older_than_its_kernels(monkeypatch):
    """The CUDA module carries sm_80 SASS and compute_90 PTX only: on an older GPU every
    launch would fail, so the backend must not register (auto then falls back)."""
    import importlib.util
    import sys
    import types

    fake = types.ModuleType("fastadv._C_cuda")
    fake.probe = lambda: ""
    fake.FLOAT32, fake.FLOAT16, fake.BFLOAT16 = 0, 1, 2
    monkeypatch.setitem(sys.modules, "fastadv._C_cuda", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        lambda i=None: (9, 0) if i == 0 else (7, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: f"gpu{i}")
    spec = importlib.util.find_spec("fastadv.ops._backend_cuda")
    module = importlib.util.module_from_spec(spec)
    before = {op: dict(impls) for op, impls in _dispatch._TABLE.items()}
    with pytest.raises(ImportError, match=r"cuda:1 \(gpu1, sm_70\)"):
        spec.loader.exec_module(module)
    assert {op: dict(impls) for op, impls in _dispatch._TABLE.items()} == before
