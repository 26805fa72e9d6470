"""The registry: names, lookup, frozen instances, and the defaults each method documents."""
import dataclasses

import pytest

from fastadv import methods

NAMES = {"standard", "fast_at", "pgd_at", "pgd2_at", "trades", "fast_trades",
         "backward_smoothing", "fast_bat", "grad_align", "n_fgsm"}


def test_registry_covers_all_methods():
    assert set(methods.available()) == NAMES
    assert methods.get("n_fgsm").__class__ is methods.NFGSM


def test_lookup_normalises_the_name():
    assert type(methods.get("Fast-AT")) is methods.FastAT
    assert methods.fields(" N-FGSM ") == ("eps", "alpha", "noise", "clip", "bn_mode")


def test_methods_are_frozen():
    method = methods.get("trades")
    with pytest.raises(dataclasses.FrozenInstanceError):
        method.beta = 1.0


def test_defaults_follow_the_papers():
    assert methods.get("fast_at").resolved()["alpha"] == pytest.approx(10 / 255)
    assert methods.get("pgd_at").steps == 10 and methods.get("pgd_at").alpha == pytest.approx(2 / 255)
    assert methods.get("pgd2_at", eps=0.3).resolved()["alpha"] == pytest.approx(0.15)
    t = methods.get("trades")
    assert (t.beta, t.steps, t.bn_mode, t.init) == (6.0, 10, "eval", "normal")
    assert methods.get("fast_trades").resolved()["alpha"] == pytest.approx(8 / 255)
    assert methods.get("fast_trades", steps=2).resolved()["alpha"] == pytest.approx(5 / 255)
    bs = methods.get("backward_smoothing")
    assert (bs.beta, bs.gamma, bs.resolved()["alpha"]) == (10.0, 1.0, pytest.approx(8 / 255))
    fb = methods.get("fast_bat")
    assert fb.resolved()["alpha"] == pytest.approx(5000 / 255) and fb.lam == 10.0
    assert methods.get("fast_bat", eps=16 / 255).resolved()["alpha"] == pytest.approx(2000 / 255)
    assert fb.linearization == "pgd_nosign" and fb.bn_mode == "train"
    assert methods.get("grad_align").resolved()["reg"] == pytest.approx(0.2)
    assert methods.get("grad_align", eps=16 / 255).resolved()["reg"] == pytest.approx(2.0)
    nf = methods.get("n_fgsm")
    assert (nf.noise, nf.clip, nf.bn_mode) == (2.0, None, "train")
    assert nf.resolved()["alpha"] == pytest.approx(8 / 255)
    assert methods.get("n_fgsm", eps=16 / 255).resolved()["alpha"] == pytest.approx(16 / 255)
    assert nf.projection_radius() == pytest.approx(3 * 8 / 255)  # (k + 1) eps: never clips
    assert methods.get("n_fgsm", clip=1.0).projection_radius() == pytest.approx(8 / 255)
