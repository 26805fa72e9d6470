"""The gradient-masking warning's advice fits what ran: "run autoattack" only when it did not."""
import pytest

from fastadv.evaluation.sanity import warn_if_gradient_masking


def test_advice_when_autoattack_did_not_run():
    with pytest.warns(RuntimeWarning, match="run autoattack"):
        warn_if_gradient_masking({"pgd-20": 0.5, "rays": 0.3}, {"pgd-20": "pgd", "rays": "rays"},
                                 100)


def test_advice_when_autoattack_ran():
    with pytest.warns(RuntimeWarning, match="gradient masking") as caught:
        warn_if_gradient_masking({"pgd-20": 0.5, "rays": 0.3, "autoattack": 0.28},
                                 {"pgd-20": "pgd", "rays": "rays", "autoattack": "autoattack"},
                                 100)
    message = str(caught[0].message)
    assert "run autoattack" not in message and "report the lowest number" in message
