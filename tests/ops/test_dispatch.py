"""The dispatcher of fastadv.ops (fastadv/ops/_dispatch.py, _backends.py): backend choice
(argument > use_backend context > FASTADV_BACKEND > auto), unknown and unavailable backends,
what each backend registers and when it stays out, and the one dense layout every backend
receives."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastadv.ops as ops
from fastadv.ops import _backends, _dispatch, reference
from tests.ops.helpers import (BITWISE, CASES, HAS_TRITON, KERNEL_CASES, TRITON_DEVICE,
                               TRITON_DTYPES, backend_fn, case_id, close, kernel_module,
                               make_batch)


def chosen(backend=None, device="cpu", dtype=torch.float32):
    return _dispatch.resolve("pgd_step", torch.device(device), dtype, backend).backend


def test_auto_prefers_the_compiled_backend_on_cpu():
    expected = "cpp" if "cpp" in ops.available_backends("cpu") else "reference"
    assert chosen() == expected
    # float64 is served by the reference only: auto falls back silently
    assert chosen(dtype=torch.float64) == "reference"


def test_resolve_returns_what_the_op_runs():
    impl = _dispatch.resolve("pgd_step", "cpu", torch.float32, "reference")
    assert impl.backend == "reference" and "cpu" in impl.devices
    assert set(impl.dtypes) == {torch.float32, torch.float16, torch.bfloat16, torch.float64}
    assert impl.fn is _dispatch.implementation("pgd_step", "reference").fn


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


def test_unknown_and_unavailable_backends():
    x = torch.rand(2, 3, 4, 4)
    x_adv, grad = x.clone(), torch.randn_like(x)
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        ops.pgd_step(x_adv, grad, x, alpha=0.1, eps=0.1, backend="fast")
    with pytest.raises(ValueError, match="unknown backend"):
        with ops.use_backend("gpu"):
            pass
    with pytest.raises(RuntimeError, match=r"backend 'cuda' cannot run pgd_step.*Available on cpu"):
        ops.pgd_step(x_adv, grad, x, alpha=0.1, eps=0.1, backend="cuda")
    if "cpp" in ops.available_backends("cpu"):
        with pytest.raises(RuntimeError, match="does not support torch.float64"):
            ops.pgd_step(x_adv.double(), grad.double(), x.double(), alpha=0.1, eps=0.1,
                         backend="cpp")


# --- what the backends register -------------------------------------------------------------

@pytest.mark.skipif("cpp" not in ops.available_backends("cpu"),
                    reason="the C++ extension is not built (pip install -e .)")
def test_cpp_backend_is_registered_for_every_op():
    for op in _dispatch.OPS:
        impl = _dispatch.resolve(op, "cpu", torch.float32, "cpp")
        assert set(impl.dtypes) == {torch.float32, torch.float16} and impl.devices == ("cpu",)


@pytest.mark.skipif(not HAS_TRITON, reason="triton backend not available here")
def test_triton_backend_registers_its_kernels():
    for op in _dispatch.OPS:
        impl = _dispatch.resolve(op, TRITON_DEVICE, torch.float32, "triton")
        assert TRITON_DEVICE in impl.devices and set(impl.dtypes) == set(TRITON_DTYPES)
        module = "kl_div_logits" if op == "kl_div_logits_backward" else op
        assert impl.fn is getattr(kernel_module(module), op)  # one name per op


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU makes the backend importable")
def test_triton_backend_is_absent_without_gpu_or_interpreter():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    code = ("import torch\n"
            "import fastadv.ops as ops\n"
            "assert 'triton' not in ops.available_backends('cpu')\n"
            "try:\n"
            "    ops.masked_scale(torch.ones(2), torch.ones(2, dtype=torch.bool), 1.0,\n"
            "                     backend='triton')\n"
            "except RuntimeError as exc:\n"
            "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ImportError" in done.stdout and "TRITON_INTERPRET=1" in done.stdout


def test_cuda_backend_stays_out_on_gpus_older_than_its_kernels(monkeypatch):
    """The CUDA module carries sm_80 SASS and compute_90 PTX only: on an older GPU every
    launch would fail, so the backend must not register (auto then falls back)."""
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
    before = {op: dict(impls) for op, impls in _dispatch._TABLE.items()}
    with pytest.raises(ImportError, match=r"cuda:1 \(gpu1, sm_70\)"):
        _backends.load_cuda()
    assert {op: dict(impls) for op, impls in _dispatch._TABLE.items()} == before


# --- the layout every backend receives ---------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_single_channel_images_mixing_contiguous_and_channels_last(case):
    # a 1-channel image is both contiguous and channels_last, with different C-strides
    device, backend = case
    x_adv, grad, x = make_batch((4, 1, 8, 8), torch.float32, device)
    # torch keeps the first layout when asked for channels_last; a freshly allocated
    # channels_last tensor (as autograd may return) has C-stride 1 instead of 64
    grad_cl = torch.empty_like(grad, memory_format=torch.channels_last).copy_(grad)
    assert grad_cl.stride() == (64, 1, 8, 1) and grad.stride() == (64, 64, 8, 1)
    bitwise = (device, backend) in BITWISE
    expected = reference.pgd_step(x_adv, grad, x, alpha=0.01, eps=0.03)
    close(ops.pgd_step(x_adv, grad_cl, x, alpha=0.01, eps=0.03, backend=backend), expected,
          torch.float32, bitwise)
    out, mask = ops.pgd_step_with_mask(x_adv, grad_cl, x, alpha=0.01, eps=0.03,
                                       backend=backend)
    close(out, reference.pgd_step(x_adv, grad, x, alpha=0.01, eps=0.03, sign=False),
          torch.float32, bitwise)
    close(ops.masked_scale(grad_cl, mask, 0.5, backend=backend),
          reference.masked_scale(grad, mask, 0.5), torch.float32, bitwise)
    inplace = x_adv.clone()
    ops.pgd_step_(inplace, grad_cl, x, alpha=0.01, eps=0.03, backend=backend)
    close(inplace, expected, torch.float32, bitwise)


@pytest.mark.parametrize("case", KERNEL_CASES, ids=case_id)
def test_backends_launch_nothing_on_empty_tensors(case):
    device, backend = case
    empty = torch.empty(0, 3, device=device)

    def fn(op):
        return backend_fn(op, backend, device)

    fn("pgd_step")(empty, empty, empty, empty, alpha=0.1, eps=0.1, sign=True)
    fn("pgd_step_with_mask")(empty, empty, empty, empty, empty.bool(), alpha=0.1, eps=0.1,
                             sign=False, tol=1e-7)
    fn("masked_scale")(empty, empty.bool(), empty, scale=2.0)
    fn("random_start")(empty, empty, eps=0.1, kind="uniform", scale=None, clamp=True, seed=0)
    assert fn("kl_div_logits")(empty, empty).shape == (0,)
    grad_q, grad_p = fn("kl_div_logits_backward")(empty, empty, torch.empty(0, device=device))
    assert grad_q.shape == grad_p.shape == (0, 3)


def test_backend_load_errors_say_why_each_missing_backend_is_missing():
    errors = ops.backend_load_errors()
    assert set(errors) <= set(ops.BACKEND_NAMES[1:])
    for name, why in errors.items():
        assert isinstance(why, str) and why
        # a backend that failed to load serves no device
        assert all(name not in ops.available_backends(kind) for kind in ("cpu", "cuda"))
    if not torch.cuda.is_available():
        assert "cuda" in errors and "CUDA GPU" in errors["cuda"]
    recorded = dict(errors)
    errors.clear()  # a copy: the caller cannot change what the dispatcher recorded
    assert ops.backend_load_errors() == recorded
