"""PreActResNet-18, the network of Fast AT and Fast-BAT.

He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016: each block
computes  out = conv2(act(bn2(conv1(act(bn1(x)))))) + shortcut,  where the shortcut is x, or
a strided 1x1 conv applied to act(bn1(x)) when the shape changes. The CIFAR variant used by
Fast AT (Wong, Rice, Kolter, ICLR 2020) and Fast-BAT (Zhang et al., ICML 2022): a 3x3 stem
conv with no max-pool, four stages of two blocks (widths 64, 128, 256, 512; strides
1, 2, 2, 2), a final BN + activation, global average pooling and a linear classifier.
"""
from __future__ import annotations

from ._preact import PreActBlock, PreActNetwork
from ._stages import doubling_plan


class PreActResNet(PreActNetwork):
    def __init__(self, blocks_per_stage=(2, 2, 2, 2), *, num_classes: int = 10,
                 in_channels: int = 3, width: int = 64, activation: str = "relu"):
        def make_block(in_planes, planes, stride):
            return PreActBlock(in_planes, planes, stride, activation)

        super().__init__(make_block, doubling_plan(width, blocks_per_stage), stem_width=width,
                         num_classes=num_classes, in_channels=in_channels,
                         activation=activation)


def preact_resnet18(*, num_classes=10, in_channels=3, activation="relu", width=64):
    return PreActResNet((2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels,
                        width=width, activation=activation)
