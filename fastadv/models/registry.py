"""Build a model by name, with its Normalize first layer: fastadv.models.get(name, ...).

Every model fastadv builds maps images in [0, 1] to logits, because the input normalization
is its first layer; eps and step sizes then stay in pixel units (see normalize.py). The
returned module records the arguments it was built with in `.spec`, so a checkpoint can
rebuild it with get(**spec).
"""
from __future__ import annotations

import inspect
from collections import OrderedDict

from torch import nn

from .activations import check_activation
from fastadv._checks import check_channel_values, check_int

from .normalize import Normalize
from .preact_resnet import preact_resnet18
from .resnet import resnet18
from .small_cnn import small_cnn
from .wide_resnet import wide_resnet, wrn16_8, wrn34_10

_BUILDERS = {
    "preact_resnet18": preact_resnet18,
    "resnet18": resnet18,
    "wrn34_10": wrn34_10,
    "wrn16_8": wrn16_8,
    "wide_resnet": wide_resnet,
    "small_cnn": small_cnn,
}
_COMMON = ("num_classes", "in_channels", "activation")


class NormalizedModel(nn.Sequential):
    """Normalize followed by the network: model[0] / model.normalize, model[1] / model.net."""

    def __init__(self, normalize: Normalize, net: nn.Module, spec: dict):
        super().__init__(OrderedDict(normalize=normalize, net=net))
        self.spec = spec


def available() -> tuple[str, ...]:
    """The names fastadv.models.get accepts."""
    return tuple(_BUILDERS)


def extra_arguments(name: str) -> tuple[str, ...]:
    """The architecture-specific keyword arguments of `name` (width, depth, ...)."""
    builder = _builder(name)
    return tuple(p for p in inspect.signature(builder).parameters if p not in _COMMON)


def _builder(name):
    if not isinstance(name, str) or name not in _BUILDERS:
        raise ValueError(f"unknown model name {name!r}; available: {list(_BUILDERS)}")
    return _BUILDERS[name]


def get(name: str, *, num_classes: int = 10, in_channels: int = 3, mean=None, std=None,
        activation: str = "relu", **kwargs) -> NormalizedModel:
    """Build model `name` (see available()) taking images in [0, 1] and returning logits.

    mean / std: per-channel input statistics (e.g. ImageData.mean / .std); None means 0 / 1
    per channel. activation: "relu", "softplus" or "swish". Extra keyword arguments go to
    the architecture: width (small_cnn, resnet18, preact_resnet18), depth / widen_factor
    (wide_resnet), dropout (WideResNets), batch_norm (small_cnn).
    """
    builder = _builder(name)
    check_int("num_classes", num_classes, minimum=2)
    check_int("in_channels", in_channels, minimum=1)
    check_activation(activation)
    allowed = extra_arguments(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"model {name!r} got unknown argument(s) {unknown}; it accepts "
                         f"{list(allowed)} besides num_classes, in_channels, mean, std, activation")
    if "width" in kwargs:
        check_int("width", kwargs["width"], minimum=1)

    mean = (0.0,) * in_channels if mean is None else check_channel_values("mean", mean)
    std = (1.0,) * in_channels if std is None else check_channel_values("std", std)
    for argument, values in (("mean", mean), ("std", std)):
        if len(values) != in_channels:
            raise ValueError(f"{argument} has {len(values)} value(s) but in_channels={in_channels}; "
                             f"give one per channel, got {argument}={values}")

    net = builder(num_classes=num_classes, in_channels=in_channels, activation=activation,
                  **kwargs)
    # resolved defaults go into the spec too, so a checkpoint rebuilds the same network even
    # if a default changes in a later version
    defaults = {p.name: p.default for p in inspect.signature(builder).parameters.values()
                if p.name in allowed}
    spec = dict(name=name, num_classes=num_classes, in_channels=in_channels, mean=list(mean),
                std=list(std), activation=activation, **{**defaults, **kwargs})
    return NormalizedModel(Normalize(mean, std), net, spec)
