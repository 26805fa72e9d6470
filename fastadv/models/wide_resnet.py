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

from .activations import make_activation


class WideBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, activation: str,
                 dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.act1 = make_activation(activation)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_activation(activation)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x):
        pre = self.act1(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        out = self.dropout(self.act2(self.bn2(self.conv1(pre))))
        return self.conv2(out) + shortcut


class WideResNet(nn.Module):
    def __init__(self, depth: int = 34, widen_factor: int = 10, *, num_classes: int = 10,
                 in_channels: int = 3, activation: str = "relu", dropout: float = 0.0):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be an integer 6n + 4 with n >= 1 (10, 16, 22, 28, 34, "
                             f"...), got depth={depth!r}")
        if isinstance(widen_factor, bool) or not isinstance(widen_factor, int) or widen_factor < 1:
            raise ValueError(f"widen_factor must be a positive integer, got {widen_factor!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        blocks_per_group = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        blocks = []
        in_planes = widths[0]
        for group, planes in enumerate(widths[1:]):
            for i in range(blocks_per_group):
                stride = 2 if (group > 0 and i == 0) else 1
                blocks.append(WideBlock(in_planes, planes, stride, activation, float(dropout)))
                in_planes = planes
        self.layers = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(in_planes)
        self.act = make_activation(activation)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_planes, num_classes)
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

    def forward(self, x):
        out = self.layers(self.conv1(x))
        out = self.pool(self.act(self.bn(out))).flatten(1)
        return self.linear(out)


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
