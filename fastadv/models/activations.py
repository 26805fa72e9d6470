"""The activation functions a fastadv model can be built with.

relu is the default of every paper fastadv follows. softplus and swish (SiLU,
x * sigmoid(x)) are the smooth activations that "Smooth Adversarial Training" (Xie et al.,
2020) found to help adversarial training, because the gradients the attack follows are then
continuous in the input.
"""
from __future__ import annotations

from torch import nn

_ACTIVATIONS = {
    # not in place: a method may keep the graph for a double backward (Fast-BAT, GradAlign)
    "relu": nn.ReLU,
    "softplus": nn.Softplus,
    "swish": nn.SiLU,
}


def activation_names() -> tuple[str, ...]:
    return tuple(_ACTIVATIONS)


def check_activation(name) -> str:
    if not isinstance(name, str) or name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(_ACTIVATIONS)}, got {name!r}")
    return name


def make_activation(name: str) -> nn.Module:
    """A fresh activation module (each layer gets its own, so hooks can tell them apart)."""
    return _ACTIVATIONS[check_activation(name)]()
