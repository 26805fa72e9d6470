"""WideResNet (WRN-depth-k): WRN-34-10 of TRADES / Backward Smoothing, WRN-16-8.

Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016. depth = 6n + 4: a 3x3 stem conv
with 16 channels, then three groups of n pre-activation blocks with widths 16k, 32k, 64k
(strides 1, 2, 2), a final BN + activation, global average pooling, a linear classifier.
Block:  out = conv2(dropout(act(bn2(conv1(act(bn1(x))))))) + shortcut,  the shortcut being x,
or a strided 1x1 conv of act(bn1(x)) when the shape changes. Convolutions use He init with
fan_out (std = sqrt(2 / (k*k*out_channels))), as in the original code.
"""
from __future__ import annotations

from torch import nn

from ._preact import PreActBlock, PreActNetwork


class WideBlock(PreActBlock):
    """A pre-activation block with dropout between its convolutions (Identity at rate 0)."""

    def __init__(self, in_planes: int, planes: int, stride: int, activation: str,
                 dropout: float):
        super().__init__(in_planes, planes, stride, activation, dropout=dropout)


class WideResNet(PreActNetwork):
    def __init__(self, depth: int = 34, widen_factor: int = 10, *, num_classes: int = 10,
                 in_channels: int = 3, activation: str = "relu", dropout: float = 0.0):
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be an integer 6n + 4 with n >= 1 (10, 16, 22, 28, 34, "
                             f"...), got depth={depth!r}")
        if isinstance(widen_factor, bool) or not isinstance(widen_factor, int) or widen_factor < 1:
            raise ValueError(f"widen_factor must be a positive integer, got {widen_factor!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        blocks_per_group = (depth - 4) // 6
        plan = [(planes, blocks_per_group)
                for planes in (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)]

        def make_block(in_planes, planes, stride):
            return WideBlock(in_planes, planes, stride, activation, float(dropout))

        super().__init__(make_block, plan, stem_width=16, num_classes=num_classes,
                         in_channels=in_channels, activation=activation)
        self._init_weights()

    def _init_weights(self):
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)


def wide_resnet(*, num_classes=10, in_channels=3, activation="relu", depth=34, widen_factor=10,
                dropout=0.0):
    return WideResNet(depth, widen_factor, num_classes=num_classes, in_channels=in_channels,
                      activation=activation, dropout=dropout)


def wrn34_10(*, num_classes=10, in_channels=3, activation="relu", dropout=0.0):
    return wide_resnet(num_classes=num_classes, in_channels=in_channels, activation=activation,
                       depth=34, widen_factor=10, dropout=dropout)


def wrn16_8(*, num_classes=10, in_channels=3, activation="relu", dropout=0.0):
    return wide_resnet(num_classes=num_classes, in_channels=in_channels, activation=activation,
                       depth=16, widen_factor=8, dropout=dropout)
