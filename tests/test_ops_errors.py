"""Bad input to fastadv.ops gives a clear error naming the argument and the value."""
import math

import pytest
import torch

import fastadv.ops as ops


def batch(shape=(2, 3, 4, 4), dtype=torch.float32):
    x = torch.rand(shape, dtype=dtype)
    return x.clone(), torch.randn(shape, dtype=dtype), x


STEP_OPS = [ops.pgd_step, ops.pgd_step_, ops.pgd_step_with_mask]


@pytest.mark.parametrize("op", STEP_OPS, ids=lambda f: f.__name__)
def test_step_ops_reject_bad_tensors(op):
    x_adv, grad, x = batch()
    with pytest.raises(ValueError, match="grad has shape"):
        op(x_adv, grad[:1], x, alpha=0.1, eps=0.1)
    with pytest.raises(TypeError, match="x_adv has dtype"):
        op(x_adv.double(), grad, x, alpha=0.1, eps=0.1)
    with pytest.raises(TypeError, match="x must be a floating tensor"):
        op(x_adv, grad, (x * 255).to(torch.uint8), alpha=0.1, eps=0.1)
    with pytest.raises(TypeError, match="grad must be a torch.Tensor"):
        op(x_adv, grad.tolist(), x, alpha=0.1, eps=0.1)
    with pytest.raises(ValueError, match="x_adv is on meta"):
        op(x_adv.to("meta"), grad, x, alpha=0.1, eps=0.1)


@pytest.mark.parametrize("op", STEP_OPS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("name,value,error,message", [
    ("eps", -0.1, ValueError, "eps must be >= 0.0, got -0.1"),
    ("eps", float("nan"), ValueError, "eps must be finite, got nan"),
    ("eps", float("inf"), ValueError, "eps must be finite"),
    ("eps", "8/255", TypeError, "eps must be a real number"),
    ("alpha", 0.0, ValueError, "alpha must be > 0, got 0.0"),
    ("alpha", -1.0, ValueError, "alpha must be > 0, got -1.0"),
    ("alpha", float("nan"), ValueError, "alpha must be finite"),
    ("sign", 1, TypeError, "sign must be a bool"),
])
def test_step_ops_reject_bad_hyperparameters(op, name, value, error, message):
    x_adv, grad, x = batch()
    kwargs = {"alpha": 0.1, "eps": 0.1, name: value}
    with pytest.raises(error, match=message):
        op(x_adv, grad, x, **kwargs)


@pytest.mark.parametrize("op", STEP_OPS, ids=lambda f: f.__name__)
def test_step_ops_reject_bad_pixels(op):
    x_adv, grad, x = batch()
    nan_x = x.clone()
    nan_x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="x contains NaN"):
        op(x_adv, grad, nan_x, alpha=0.1, eps=0.1)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        op(x_adv, grad, x * 2 + 0.5, alpha=0.1, eps=0.1)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        op(x_adv, grad, x - x.min() - 1e-3, alpha=0.1, eps=0.1)
    # within the documented 1e-6 slack is accepted
    op(x_adv, grad, x / x.max() + 5e-7, alpha=0.1, eps=0.1)


def test_pixel_check_sees_in_place_changes():
    x_adv, grad, x = batch()
    ops.pgd_step(x_adv, grad, x, alpha=0.1, eps=0.1)
    x.mul_(3.0)  # same tensor, new version: must be checked again
    with pytest.raises(ValueError, match="x must lie in"):
        ops.pgd_step(x_adv, grad, x, alpha=0.1, eps=0.1)


def test_ops_run_on_inference_tensors():
    # inference tensors have no version counter: the cached pixel check must not need one
    with torch.inference_mode():
        x_adv, grad, x = batch()
        expected = ops.pgd_step(x_adv, grad, x, alpha=0.1, eps=0.1, backend="reference")
        assert torch.equal(ops.pgd_step(x_adv, grad, x, alpha=0.1, eps=0.1), expected)
        ops.pgd_step_with_mask(x_adv, grad, x, alpha=0.1, eps=0.1)
        ops.random_start(x, 0.1)
        assert torch.equal(ops.pgd_step_(x_adv.clone(), grad, x, alpha=0.1, eps=0.1), expected)
        with pytest.raises(ValueError, match="x must lie in"):
            ops.pgd_step(x_adv, grad, x * 3 + 1, alpha=0.1, eps=0.1)


def test_value_checks_can_be_disabled():
    x_adv, grad, x = batch()
    with ops.value_checks(False):
        ops.pgd_step(x_adv, grad, x * 2, alpha=0.1, eps=0.1)
    with pytest.raises(ValueError):
        ops.pgd_step(x_adv, grad, x * 2, alpha=0.1, eps=0.1)


def test_mask_tol_and_inplace_errors():
    x_adv, grad, x = batch()
    with pytest.raises(ValueError, match="tol must be >= 0.0"):
        ops.pgd_step_with_mask(x_adv, grad, x, alpha=0.1, eps=0.1, tol=-1.0)
    with pytest.raises(ValueError, match="x_adv requires grad"):
        ops.pgd_step_(x_adv.requires_grad_(), grad, x, alpha=0.1, eps=0.1)


def test_masked_scale_errors():
    g = torch.randn(3, 4)
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        ops.masked_scale(g, torch.ones(3, 4), 0.1)
    with pytest.raises(ValueError, match="mask has shape"):
        ops.masked_scale(g, torch.ones(4, 3, dtype=torch.bool), 0.1)
    with pytest.raises(ValueError, match="scale must be finite"):
        ops.masked_scale(g, g > 0, math.inf)
    with pytest.raises(TypeError, match="g must be a floating tensor"):
        ops.masked_scale(g.long(), g > 0, 0.1)


def test_random_start_errors():
    x = torch.rand(2, 3)
    with pytest.raises(ValueError, match="kind must be one of"):
        ops.random_start(x, 0.1, kind="gaussian")
    with pytest.raises(ValueError, match="eps must be >= 0.0"):
        ops.random_start(x, -0.1)
    with pytest.raises(ValueError, match="scale applies only to kind='normal'"):
        ops.random_start(x, 0.1, scale=0.5)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        ops.random_start(x, 0.1, generator=3)
    with pytest.raises(ValueError, match="x contains NaN"):
        ops.random_start(torch.full((2,), float("nan")), 0.1)
    with pytest.raises(TypeError, match="x must be a floating tensor"):
        ops.random_start(torch.ones(2, dtype=torch.int64), 0.1)
    # kind="zero" draws nothing, but its backend argument is still checked
    with pytest.raises(ValueError, match="unknown backend 'bogus'"):
        ops.random_start(x, 0.1, kind="zero", backend="bogus")
    with pytest.raises(TypeError, match="backend must be a str"):
        ops.random_start(x, 0.1, kind="zero", backend=1)


def test_kl_errors():
    q = torch.randn(3, 4)
    with pytest.raises(ValueError, match="reduction must be one of"):
        ops.kl_div_logits(q, q, reduction="mean")
    with pytest.raises(ValueError, match="logits_p has shape"):
        ops.kl_div_logits(q, q[:, :3])
    with pytest.raises(TypeError, match="logits_p has dtype"):
        ops.kl_div_logits(q, q.double())
    with pytest.raises(TypeError, match="logits_q must be a floating tensor"):
        ops.kl_div_logits(q.long(), q.long())
    with pytest.raises(ValueError, match="non-empty last"):
        ops.kl_div_logits(torch.randn(3, 0), torch.randn(3, 0))


def test_unknown_and_unavailable_backends():
    x_adv, grad, x = batch()
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
