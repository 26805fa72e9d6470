"""ResNet-18, CIFAR variant (the network of Backward Smoothing's and TRADES' ResNet tables).

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016. Basic block:
out = act(bn2(conv2(act(bn1(conv1(x))))) + shortcut(x)),  shortcut = identity, or a strided
1x1 conv + BN when the shape changes. The CIFAR variant replaces the 7x7/stride-2 stem and
max-pool with one 3x3/stride-1 conv + BN + activation; four stages of two blocks (widths 64,
128, 256, 512; strides 1, 2, 2, 2), global average pooling, a linear classifier.
"""
from __future__ import annotations

from torch import nn

from ._stages import conv1x1, conv3x3, doubling_plan, make_stages
from .activations import make_activation


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, activation: str):
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = make_activation(activation)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_activation(activation)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                conv1x1(in_planes, planes, stride),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, blocks_per_stage=(2, 2, 2, 2), *, num_classes: int = 10,
                 in_channels: int = 3, width: int = 64, activation: str = "relu"):
        super().__init__()
        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = make_activation(activation)

        def make_block(in_planes, planes, stride):
            return BasicBlock(in_planes, planes, stride, activation)

        self.layers, in_planes = make_stages(make_block, width,
                                             doubling_plan(width, blocks_per_stage))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.pool(self.layers(out)).flatten(1)
        return self.linear(out)


def resnet18(*, num_classes=10, in_channels=3, activation="relu", width=64):
    return ResNet((2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels,
                  width=width, activation=activation)
