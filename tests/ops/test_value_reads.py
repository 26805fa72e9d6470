"""The ops check metadata only: no op reads a tensor value, so on a GPU none waits for the
device (fastadv/ops/__init__.py). Pixel values are checked where data enters train and
evaluate, not in the ops.

Every op runs on every backend here under the watcher of tests/value_reads.py, which records
each read of a value an op could inspect: a floating or bool tensor (the operands, their masks
and results) or any tensor on a GPU. A read is a scalar read (.item(), bool(), float(),
torch.equal), an op whose output shape depends on values (nonzero, boolean indexing), a copy
from a GPU to the host, or a host copy (tolist, numpy). What stays allowed is the one read
random_start needs: its seed, an integer drawn on the CPU from the caller's generator. The
watcher's own test shows that each kind of read is caught.

Triton is watched on a GPU only: on CPU its interpreter runs the kernel on the host, reading
every value by design.
"""
import pytest
import torch

import fastadv.ops as ops
from tests.ops.helpers import CASES, case_id, make_batch
from tests.value_reads import value_reads  # noqa: F401  (the fixture)

WATCHED = [c for c in CASES if not (c[1] == "triton" and c[0] == "cpu")]


def test_the_watcher_sees_every_kind_of_read(value_reads):
    x = torch.rand(8)
    with value_reads:
        torch.randint(0, 2 ** 62, (1,)).item()  # an integer seed drawn on the CPU is allowed
        assert value_reads.reads == []
        float(x.max())
        bool(torch.isnan(x).any())
        torch.aminmax(x)[0].item()
        torch.equal(x, x)
        x[x > 0.5]
        x.tolist()
    kinds = [what for what, _, _ in value_reads.reads]
    assert len(kinds) == 6, kinds
    assert sum("_local_scalar_dense" in k for k in kinds) == 3
    assert any("equal" in k for k in kinds) and any("index" in k for k in kinds)
    assert kinds[-1] == "Tensor.tolist"


def every_op(device, backend):
    """Calls every public op once on ``backend``, with gradients through the KL."""
    x_adv, grad, x = make_batch((4, 3, 8, 8), torch.float32, device)
    kwargs = dict(alpha=0.01, eps=0.03, backend=backend)
    ops.pgd_step(x_adv, grad, x, **kwargs)
    ops.pgd_step_(x_adv.clone(), grad, x, **kwargs)
    _, mask = ops.pgd_step_with_mask(x_adv, grad, x, **kwargs)
    ops.masked_scale(grad, mask, 0.5, backend=backend)
    ops.random_start(x, 0.03, backend=backend)
    ops.random_start(x, 0.03, kind="normal", clamp=False, backend=backend)
    ops.random_start(x, 0.03, kind="zero", backend=backend)
    q = torch.randn(6, 10, device=device, requires_grad=True)
    p = torch.randn(6, 10, device=device, requires_grad=True)
    for reduction in ("batchmean", "sum", "none"):
        torch.autograd.grad(ops.kl_div_logits(q, p, reduction=reduction, backend=backend).sum(),
                            (q, p))


@pytest.mark.parametrize("case", WATCHED, ids=case_id)
def test_no_op_reads_a_tensor_value(case, value_reads):
    device, backend = case
    every_op(device, backend)  # first calls may fill caches; the hot path is what follows
    with value_reads:
        every_op(device, backend)
    assert value_reads.reads == [], f"{backend} read tensor values: {value_reads.reads}"


def test_ops_take_out_of_range_and_nan_pixels_without_looking():
    # the ops compute on whatever they are given (clipping to the box as the formula says)
    x = torch.tensor([float("nan"), -0.5, 2.0, 0.5])
    out = ops.pgd_step(x.clone(), torch.ones(4), x, alpha=0.1, eps=0.1, backend="reference")
    assert torch.isnan(out[0]) and out[1:].tolist() == pytest.approx([0.0, 1.0, 0.6])
