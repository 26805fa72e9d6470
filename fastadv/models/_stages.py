"""Layers and the stage layout shared by the CIFAR ResNet family (resnet.py,
preact_resnet.py, wide_resnet.py).

Every network of the family is a sequence of stages of residual blocks; the first block of
every stage but the first halves the resolution (stride 2) and the others keep it. The
convolutions are bias-free because a batch norm follows (or, pre-activation, precedes) them.
"""
from __future__ import annotations

from typing import Callable, Iterable, Tuple

from torch import nn


def conv3x3(in_planes: int, planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, planes: int, stride: int) -> nn.Conv2d:
    """The projection of a shortcut whose shape changes."""
    return nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)


def make_stages(make_block: Callable[[int, int, int], nn.Module], in_planes: int,
                plan: Iterable[Tuple[int, int]]) -> Tuple[nn.Sequential, int]:
    """Blocks for ``plan``, one (planes, blocks) pair per stage, built in order by
    ``make_block(in_planes, planes, stride)``; returns them and the output width."""
    blocks = []
    for stage, (planes, count) in enumerate(plan):
        for i in range(count):
            stride = 2 if (stage > 0 and i == 0) else 1
            blocks.append(make_block(in_planes, planes, stride))
            in_planes = planes
    return nn.Sequential(*blocks), in_planes


def doubling_plan(width: int, blocks_per_stage: Iterable[int]):
    """The ResNet-18 layout: stage k has ``width * 2**k`` planes."""
    return [(width * 2 ** stage, count) for stage, count in enumerate(blocks_per_stage)]
