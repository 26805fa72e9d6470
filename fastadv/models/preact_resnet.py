"""PreActResNet-18, the network of Fast AT and Fast-BAT.

He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016: each block
computes  out = conv2(act(bn2(conv1(act(bn1(x)))))) + shortcut,  where the shortcut is x, or
a strided 1x1 conv applied to act(bn1(x)) when the shape changes. The CIFAR variant used by
Fast AT (Wong, Rice, Kolter, ICLR 2020) and Fast-BAT (Zhang et al., ICML 2022): a 3x3 stem
conv with no max-pool, four stages of two blocks (widths 64, 128, 256, 512; strides
1, 2, 2, 2), a final BN + activation, global average pooling and a linear classifier.
"""
from __future__ import annotations

from torch import nn

from .activations import make_activation


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, activation: str):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.act1 = make_activation(activation)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_activation(activation)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x):
        pre = self.act1(self.bn1(x))
        # the projection shortcut sees the pre-activated input, the identity sees x itself
        shortcut = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    def __init__(self, blocks_per_stage=(2, 2, 2, 2), *, num_classes: int = 10,
                 in_channels: int = 3, width: int = 64, activation: str = "relu"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        stages = []
        in_planes = width
        for stage, count in enumerate(blocks_per_stage):
            planes = width * 2 ** stage
            for i in range(count):
                stride = 2 if (stage > 0 and i == 0) else 1
                stages.append(PreActBlock(in_planes, planes, stride, activation))
                in_planes = planes
        self.layers = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(in_planes)
        self.act = make_activation(activation)
        # adaptive pooling: the original's avg_pool2d(4) on 32x32, and still valid elsewhere
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        out = self.layers(self.conv1(x))
        out = self.pool(self.act(self.bn(out))).flatten(1)
        return self.linear(out)


def preact_resnet18(*, num_classes=10, in_channels=3, activation="relu", width=64):
    return PreActResNet((2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels,
                        width=width, activation=activation)
