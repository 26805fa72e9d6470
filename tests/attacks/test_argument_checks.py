"""Every public attack checks its arguments once at entry: wrong types raise TypeError, wrong
values ValueError, each naming the argument; NaN or out-of-box pixels raise ValueError (the
ops behind the attacks no longer read values, so this is the attacks' own guarantee)."""
import math

import pytest
import torch

from fastadv.attacks import autoattack, fgsm, gradient_alignment, pgd, rays, transfer

from tests.helpers import linear_problem

# each attack at its cheapest, on (model, x, y); autoattack's checks run before the package
# is imported, so these cases need no pyautoattack
ATTACKS = {
    "pgd": lambda model, x, y: pgd(model, x, y, eps=0.05, steps=1),
    "fgsm": lambda model, x, y: fgsm(model, x, y, eps=0.05),
    "rays": lambda model, x, y: rays(model, x, y, queries=5),
    "transfer": lambda model, x, y: transfer(model, model, x, y, eps=0.05, steps=1),
    "gradient_alignment": lambda model, x, y: gradient_alignment(model, x, y, 0.05),
    "autoattack": lambda model, x, y: autoattack(model, x, y, eps=0.05),
}


def with_nan(x):
    x = x.clone()
    x[1, 0, 0, 0] = math.nan
    return x


@pytest.mark.parametrize("name", sorted(ATTACKS))
@pytest.mark.parametrize("bad_x, match", [
    (with_nan, "x contains NaN"),
    (lambda x: (x - 0.5) / 0.25, r"x must lie in \[0, 1\]"),  # normalized images
    (lambda x: x * 255, r"x must lie in \[0, 1\]"),           # 0..255 floats
    (lambda x: x.masked_fill(x > 0.6, math.inf), r"x must lie in \[0, 1\]"),
])
def test_attacks_reject_bad_pixels(name, bad_x, match):
    model, x, y, _ = linear_problem(n=8)
    with pytest.raises(ValueError, match=match):
        ATTACKS[name](model, bad_x(x), y)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_reject_bad_labels(name):
    model, x, y, _ = linear_problem(n=8)
    with pytest.raises(TypeError, match="integer"):
        ATTACKS[name](model, x, y.float())
    with pytest.raises(ValueError, match="1-D"):
        ATTACKS[name](model, x, y[:, None])
    with pytest.raises(ValueError, match="mismatched"):
        ATTACKS[name](model, x, y[:-1])
    with pytest.raises(TypeError, match="model"):
        ATTACKS[name]("not a model", x, y)


def test_attack_argument_errors():
    model, x, y, _ = linear_problem()
    with pytest.raises(ValueError, match="eps"):
        pgd(model, x, y, eps=-0.1)
    with pytest.raises(ValueError, match="8/255, not 8"):
        pgd(model, x, y, eps=8)
    with pytest.raises(ValueError, match="eps"):
        rays(model, x, y, eps=math.nan, early_stop=True)
    with pytest.raises(ValueError, match="early_stop=True needs eps"):
        rays(model, x, y, early_stop=True)
    with pytest.raises(TypeError, match="early_stop"):
        rays(model, x, y, eps=0.1, early_stop="yes")
    with pytest.raises(ValueError, match="queries"):
        rays(model, x, y, queries=0)
    with pytest.raises(ValueError, match="mismatched"):
        pgd(model, x, y[:-1], eps=0.1)
    with pytest.raises(TypeError, match="floating"):
        pgd(model, (x * 255).to(torch.uint8), y, eps=0.1)
    with pytest.raises(ValueError, match="restarts"):
        pgd(model, x, y, eps=0.1, restarts=0)
    with pytest.raises(TypeError, match="steps"):
        pgd(model, x, y, eps=0.1, steps=2.5)
    with pytest.raises(ValueError, match="alpha"):
        pgd(model, x, y, eps=0.1, alpha=0.0)
    with pytest.raises(ValueError, match="loss"):
        pgd(model, x, y, eps=0.1, loss="hinge")
    with pytest.raises(TypeError, match="loss"):
        pgd(model, x, y, eps=0.1, loss=None)
    with pytest.raises(TypeError, match="random_start"):
        pgd(model, x, y, eps=0.1, random_start="no")
    with pytest.raises(ValueError, match="steps"):
        transfer(model, model, x, y, eps=0.1, steps=0)
    with pytest.raises(ValueError, match="empty"):
        gradient_alignment(model, x[:0], y[:0], 0.05)
    with pytest.raises(ValueError, match="version"):
        autoattack(model, x, y, eps=0.1, version="fast")
    with pytest.raises(TypeError, match="attacks must be a list"):
        autoattack(model, x, y, eps=0.1, attacks="apgd-ce")
