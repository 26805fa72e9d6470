"""The pre-activation residual block and network shared by PreActResNet (preact_resnet.py)
and WideResNet (wide_resnet.py).

He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016. Block:
out = conv2(drop(act(bn2(conv1(act(bn1(x))))))) + shortcut, the shortcut being x, or a
strided 1x1 conv of act(bn1(x)) when the shape changes; ``drop`` is WideResNet's dropout and
absent in PreActResNet. Network: a 3x3 stem conv, the stages, a final BN + activation, global
average pooling and a linear classifier.
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Tuple

from torch import nn

from ._stages import conv1x1, conv3x3, make_stages
from .activations import make_activation


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, activation: str,
                 dropout: Optional[float] = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.act1 = make_activation(activation)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_activation(activation)
        # None (a plain attribute, no submodule) when the architecture has no dropout at all;
        # WideResNet always has the slot, an Identity at rate 0, as in the original code.
        self.dropout = None
        if dropout is not None:
            self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(planes, planes)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = conv1x1(in_planes, planes, stride)

    def forward(self, x):
        pre = self.act1(self.bn1(x))
        # the projection shortcut sees the pre-activated input, the identity sees x itself
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        out = self.act2(self.bn2(self.conv1(pre)))
        if self.dropout is not None:
            out = self.dropout(out)
        return self.conv2(out) + shortcut


class PreActNetwork(nn.Module):
    """Stem, pre-activation stages (``plan``: (planes, blocks) per stage, blocks made by
    ``make_block(in_planes, planes, stride)``), final BN + activation, pooling, linear."""

    def __init__(self, make_block: Callable[[int, int, int], nn.Module],
                 plan: Iterable[Tuple[int, int]], *, stem_width: int, num_classes: int,
                 in_channels: int, activation: str):
        super().__init__()
        self.conv1 = conv3x3(in_channels, stem_width)
        self.layers, planes = make_stages(make_block, stem_width, plan)
        self.bn = nn.BatchNorm2d(planes)
        self.act = make_activation(activation)
        # adaptive pooling: the original's avg_pool2d(4) on 32x32, and still valid elsewhere
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(planes, num_classes)

    def forward(self, x):
        out = self.layers(self.conv1(x))
        out = self.pool(self.act(self.bn(out))).flatten(1)
        return self.linear(out)
