"""DeviceLoader: the whole data set on the device, batches augmented there.

A CPU DataLoader with worker processes becomes the bottleneck of fast adversarial training
on a GPU (a Fast AT epoch of CIFAR-10 takes seconds). So the uint8 images are moved to the
device once, and per batch the loader only gathers indices, converts to float in [0, 1], and
(train=True) applies the standard augmentation of the papers fastadv follows, vectorised over
the batch: a random crop of the zero-padded image (padding 4 at 32x32) and a random
horizontal flip. Digits are not flip-symmetric, so flip defaults to on only for RGB images.

Randomness comes from torch.Generators seeded from (seed, epoch): the shuffle is drawn on
the CPU (the same order on every device), the augmentation on the data's device (no host
round trip per batch). set_epoch(e) therefore reproduces epoch e exactly.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fastadv._checks import (check_bool, check_int, check_label_tensor, check_labels,
                             check_pixels)

from .image_data import ImageData


def _mix_seed(seed: int, epoch: int, stream: int) -> int:
    # a fixed odd-multiplier mix so (seed, epoch) pairs give unrelated generator states
    value = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + stream * 0x94D049BB133111EB)
    return value % (2 ** 63)


def default_crop_padding(height: int, width: int) -> int:
    """4 for 32x32 images, 1 for 8x8: an eighth of the smaller side, at least 1."""
    return max(1, min(height, width) // 8)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Per image, a random HxW window of the image zero-padded by `padding` on every side."""
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    device = images.device
    top = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    rows = (top[:, None] + torch.arange(h, device=device))[:, None, :, None]   # [n, 1, h, 1]
    cols = (left[:, None] + torch.arange(w, device=device))[:, None, None, :]  # [n, 1, 1, w]
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


class DeviceLoader:
    """Iterate (x float [B, C, H, W] in [0, 1], y int64 [B]) batches from device memory.

    data: an ImageData, or an (x, y) pair of tensors with x uint8 (0..255) or float in [0, 1].
    train=True: reshuffle every epoch, drop the last partial batch, crop + flip.
    train=False: keep the order and the last partial batch, no augmentation.
    crop_padding: None = default_crop_padding (train only), 0 = no crop.
    flip: None = on for 3-channel images other than digits (train only).
    """

    def __init__(self, data, batch_size: int, *, train: bool = True, device="cpu",
                 seed: int = 0, crop_padding=None, flip=None):
        images, labels, num_classes, mean, std, name = _unpack(data)
        check_int("batch_size", batch_size, minimum=1)
        check_bool("train", train)
        check_int("seed", seed)
        n = images.shape[0]
        if n == 0:
            raise ValueError("data is empty: a DeviceLoader needs at least one image")
        if train and batch_size > n:
            raise ValueError(f"batch_size={batch_size} exceeds the {n} images of the data set; "
                             f"with train=True the partial batch is dropped, leaving no batches")
        _, channels, height, width = images.shape
        if crop_padding is None:
            crop_padding = default_crop_padding(height, width)
        check_int("crop_padding", crop_padding, minimum=0)
        if flip is None:
            flip = channels == 3 and name != "digits"
        check_bool("flip", flip)

        self.device = torch.device(device)
        # the one transfer of the whole set; uint8 stays uint8 (4x less device memory)
        self.images = images.to(self.device).contiguous()
        self.labels = labels.to(self.device, torch.long)
        self.batch_size = batch_size
        self.train = train
        self.seed = seed
        self.crop_padding = crop_padding if train else 0
        self.flip = flip if train else False
        self.num_classes = num_classes
        self.mean = mean
        self.std = std
        self.name = name
        self.data = data if isinstance(data, ImageData) else None  # the source set, if any
        self.dataset_size = n
        self.epoch = 0

    def __len__(self) -> int:
        if self.train:
            return self.dataset_size // self.batch_size
        return math.ceil(self.dataset_size / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """The next iteration draws the shuffle and augmentation of `epoch`."""
        check_int("epoch", epoch, minimum=0)
        self.epoch = epoch

    def __iter__(self):
        epoch = self.epoch
        # iterating again without set_epoch moves on to a fresh shuffle
        self.epoch += 1
        return self._batches(epoch)

    def _batches(self, epoch: int):
        if self.train:
            shuffle_gen = torch.Generator().manual_seed(_mix_seed(self.seed, epoch, 0))
            order = torch.randperm(self.dataset_size, generator=shuffle_gen).to(self.device)
            augment_gen = torch.Generator(device=self.device)
            augment_gen.manual_seed(_mix_seed(self.seed, epoch, 1))
        else:
            order = None
        for i in range(len(self)):
            start = i * self.batch_size
            stop = min(start + self.batch_size, self.dataset_size)
            if order is None:
                x, y = self.images[start:stop], self.labels[start:stop]
            else:
                index = order[start:stop]
                x, y = self.images[index], self.labels[index]
            if self.crop_padding:
                x = random_crop(x, self.crop_padding, augment_gen)
            if self.flip:
                x = random_flip(x, augment_gen)
            yield _to_unit_float(x), y

    def __repr__(self) -> str:
        return (f"DeviceLoader(name={self.name!r}, dataset_size={self.dataset_size}, "
                f"batch_size={self.batch_size}, train={self.train}, device={self.device}, "
                f"crop_padding={self.crop_padding}, flip={self.flip})")


def _to_unit_float(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    # already in [0, 1] (checked once at construction); copied so that a caller who edits a
    # batch in place cannot change the stored data set
    return x.to(torch.float32, copy=True)


def _unpack(data):
    """(images, labels, num_classes, mean, std, name) from an ImageData or an (x, y) pair."""
    if isinstance(data, ImageData):
        return data.x, data.y, data.num_classes, data.mean, data.std, data.name
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"data must be an ImageData or an (x, y) pair of tensors, got "
                        f"{type(data).__name__}")
    x, y = data
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise TypeError(f"x must be a tensor [N, C, H, W], got "
                        f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    check_label_tensor("y", y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}")
    if x.dtype == torch.uint8:
        scale = 255.0
    elif x.is_floating_point():
        scale = 1.0
        check_pixels("x", x)  # once, where the data enters: no NaN, inside [0, 1]
    else:
        raise TypeError(f"x must be uint8 (0..255) or floating point in [0, 1], got {x.dtype}")
    check_labels("labels", y)
    num_classes = max(int(y.max()) + 1, 2) if y.numel() else 2
    if x.numel():
        # per-channel statistics of the pair itself, for the model's Normalize layer
        values = x.detach().transpose(0, 1).reshape(x.shape[1], -1).double() / scale
        mean = tuple(values.mean(dim=1).tolist())
        std = tuple(max(s, 1e-12) for s in values.std(dim=1, unbiased=False).tolist())
    else:
        mean, std = (0.0,) * x.shape[1], (1.0,) * x.shape[1]
    return x, y, num_classes, mean, std, "custom"
