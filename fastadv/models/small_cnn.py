"""A small CNN for small inputs: the bundled 8x8 digits, and quick runs on 32x32 RGB.

Shaped after the SmallCNN that TRADES (Zhang et al., ICML 2019) uses for MNIST: two blocks of
two 3x3 convolutions, a classifier of two linear layers. Changes so that one network serves
every input size >= 8: padded convolutions, a 2x2 max-pool after the first block only, and
adaptive average pooling to 2x2 before the classifier. `width` sets the first block's
channels (the second has 2 * width); `batch_norm` adds BN after every convolution.
"""
from __future__ import annotations

from torch import nn

from fastadv._checks import check_bool, check_int

from .activations import make_activation


class SmallCNN(nn.Module):
    def __init__(self, *, num_classes: int = 10, in_channels: int = 3, width: int = 32,
                 activation: str = "relu", batch_norm: bool = False):
        super().__init__()
        width = check_int("width", width, minimum=1)
        batch_norm = check_bool("batch_norm", batch_norm)

        def conv(cin, cout):
            layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(make_activation(activation))
            return layers

        self.features = nn.Sequential(
            *conv(in_channels, width), *conv(width, width),
            nn.MaxPool2d(2),
            *conv(width, 2 * width), *conv(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(2),
        )
        hidden = 4 * width
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * 4, hidden),
            make_activation(activation),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def small_cnn(*, num_classes=10, in_channels=3, activation="relu", width=32, batch_norm=False):
    return SmallCNN(num_classes=num_classes, in_channels=in_channels, width=width,
                    activation=activation, batch_norm=batch_norm)
