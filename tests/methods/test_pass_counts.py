"""Every method runs exactly the network passes METHODS.md allows: forwards counted by a hook
on the model, backward traversals by a hook on the first layer's output. The traversals
inside ``loss()`` (the attack) must leave no parameter gradient behind: they are input-only
(Fast-BAT's delta* pass returns its parameter gradient through autograd.grad, not .grad)."""
import pytest

from fastadv import methods
from tests.methods.helpers import PassCounter, make

# name: (overrides, forwards, backward traversals inside loss(), backward traversals in all).
# TRADES-family final backward traverses the clean and the adversarial graphs (2); Fast-BAT:
# z0, z (create_graph), delta* (input and parameters in one pass), then the loop's double
# backward through z's graph; GradAlign: x, eta (create_graph), then the loop's backward
# through x+d and the double backward through eta's graph; N-FGSM: the input-only backward
# at x + eta, then the loop's backward.
PASSES = {
    "standard": ({}, 1, 0, 1),
    "fast_at": ({}, 2, 1, 2),
    "pgd_at": ({"steps": 3}, 4, 3, 4),
    "pgd2_at": ({}, 3, 2, 3),
    "trades": ({"steps": 3}, 1 + 3 + 2, 3, 3 + 2),
    "fast_trades": ({}, 1 + 1 + 2, 1, 1 + 2),
    "backward_smoothing": ({}, 2 + 2, 2, 2 + 2),
    "fast_bat": ({"alpha": 0.3}, 3, 3, 4),
    "grad_align": ({}, 3, 2, 4),
    "n_fgsm": ({}, 2, 1, 2),
}


def test_every_method_has_a_pass_count():
    assert set(PASSES) == set(methods.available())


@pytest.mark.parametrize("name", sorted(PASSES))
def test_network_passes_are_minimal(name):
    overrides, forwards, attack_backwards, backwards = PASSES[name]
    model, x, y = make(10)
    counter = PassCounter(model)
    out = methods.get(name, eps=0.1, **overrides).loss(model, x, y)
    assert counter.backwards == attack_backwards
    assert all(p.grad is None for p in model.parameters()), "the attack left parameter gradients"
    out.loss.backward()
    assert (counter.forwards, counter.backwards) == (forwards, backwards)
