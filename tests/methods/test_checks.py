"""Bad hyperparameters: a wrong value raises ValueError, a wrong type TypeError, and the
message names the field (fastadv._checks' rule)."""
import pytest

from fastadv import methods


@pytest.mark.parametrize("name,overrides,match", [
    ("nope", {}, "available"),
    ("fast_at", {"beta": 1.0}, "valid"),
    ("fast_at", {"eps": 1.5}, "eps"),
    ("fast_at", {"eps": -0.1}, "eps"),
    ("pgd_at", {"steps": 0}, "steps"),
    ("pgd_at", {"alpha": 0.0}, "alpha"),
    ("trades", {"init": "gaussian"}, "init"),
    ("trades", {"bn_mode": "frozen"}, "bn_mode"),
    ("trades", {"init_scale": -0.1}, "init_scale"),
    ("fast_bat", {"lam": 0}, "lam"),
    ("fast_bat", {"linearization": "random"}, "linearization"),
    ("backward_smoothing", {"gamma": float("nan")}, "gamma"),
    ("grad_align", {"reg": -1.0}, "reg"),
    ("n_fgsm", {"noise": -1.0}, "noise must be >= 0"),
    ("n_fgsm", {"clip": 0.0}, "clip must be > 0"),
    ("n_fgsm", {"clip": float("inf")}, "clip must be finite"),
])
def test_bad_hyperparameters_raise(name, overrides, match):
    with pytest.raises(ValueError, match=match):
        methods.get(name, **overrides)


@pytest.mark.parametrize("name,overrides,match", [
    ("trades", {"bn_mode": None}, "bn_mode must be a str"),
    ("pgd_at", {"steps": 1.5}, r"steps must be an int, got float \(1.5\)"),
    ("trades", {"steps": True}, "steps must be an int"),
    ("fast_at", {"eps": "8/255"}, "eps must be a real number"),
    ("fast_at", {"alpha": "0.1"}, "alpha must be a real number"),
    ("n_fgsm", {"noise": None}, "noise must be a real number"),
    ("n_fgsm", {"clip": "1"}, "clip must be a real number"),
    ("fast_bat", {"linearization": 1}, "linearization must be a str"),
])
def test_option_of_the_wrong_type_is_a_type_error(name, overrides, match):
    with pytest.raises(TypeError, match=match):
        methods.get(name, **overrides)


def test_method_name_of_the_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="method name must be a str"):
        methods.get(3)
