"""fastadv.attacks.autoattack: the adapter to the authors' pyautoattack package (the eval
extra; the tests that run it skip without it, the install hint is tested either way)."""
import sys

import pytest
import torch

from fastadv.attacks import autoattack, pgd

from tests.helpers import net_batch, small_net


def test_autoattack_standard_through_the_package():
    pytest.importorskip("pyautoattack")  # the eval extra; CI installs it
    model = small_net(seed=2)
    x, y = net_batch(model, n=6, seed=4)
    # a radius at which APGD-CE breaks every point keeps "standard" fast (FAB-T and Square
    # then have nothing left to attack)
    x_adv, success = autoattack(model, x, y, eps=0.3, version="standard", seed=0)
    assert (x_adv - x).abs().max() <= 0.3 + 1e-6
    with torch.no_grad():
        assert torch.equal(model(x_adv).argmax(1) != y, success)
    assert bool(success.all())


def test_autoattack_subset_is_at_least_as_strong_as_pgd():
    pytest.importorskip("pyautoattack")
    model = small_net(seed=2)
    x, y = net_batch(model, n=10, seed=4)
    x_adv, success = autoattack(model, x, y, eps=0.05, attacks=["apgd-ce"])
    assert (x_adv - x).abs().max() <= 0.05 + 1e-6
    with torch.no_grad():
        assert torch.equal(model(x_adv).argmax(1) != y, success)
    _, pgd_success = pgd(model, x, y, eps=0.05, steps=20)
    assert 0 < int(success.sum()) < len(y)
    assert int(success.sum()) >= int(pgd_success.sum())
    with pytest.raises(ValueError, match="attacks"):
        autoattack(model, x, y, eps=0.05, attacks=["apgd-xx"])


def test_autoattack_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyautoattack", None)
    model = small_net()
    x, y = net_batch(model, n=4)
    with pytest.raises(ImportError, match=r"fastadv\[eval\]"):
        autoattack(model, x, y, eps=0.03)
