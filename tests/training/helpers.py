"""Tiny models and data shared by the training tests: a 6x6 one-channel problem whose
classes a small CNN learns in a few steps."""
import torch
from torch import nn


def tiny_model(classes=3, channels=1, size=6):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * size * size, classes))


def tiny_data(n=96, classes=3, channels=1, size=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.rand(n, channels, size, size, generator=g) * 0.5
    x[:, :, : size // 2] += 0.4 * (y[:, None, None, None] == 1)  # learnable signal
    x[:, :, size // 2:] += 0.4 * (y[:, None, None, None] == 2)
    return x.clamp(0, 1), y


# small batches, a validation split, no bar: the settings of most training tests
FAST = dict(batch_size=16, lr=0.05, progress=False, val_size=16)
