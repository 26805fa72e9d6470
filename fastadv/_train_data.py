"""Turn what a user passes to train() into batches on the device, a held-out validation set
and the overfitting guard's fixed batch.

Accepted training data:
- a fastadv.data.ImageData: split into train / validation (``val_size`` held out, seeded),
  batched by a fastadv.data.DeviceLoader (on-device augmentation);
- (x, y) tensors (x uint8 or float in [0, 1], N C H W): split the same way, batched on the
  device with a per-epoch seeded shuffle, no augmentation;
- a fastadv.data.DeviceLoader or any iterable of (x, y) batches (a torch DataLoader): used as
  given, no split (pass ``val_data`` to validate).
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Optional, Tuple

import torch

from fastadv.data import DeviceLoader, ImageData
from fastadv._checks import check_pixels


def as_float_images(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be uint8 or floating point images, got dtype {x.dtype}")
    return x


def check_labels(y, n: int, name: str = "y") -> torch.Tensor:
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(y).__name__}")
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.dim() != 1:
        raise ValueError(f"{name} must be a 1-D integer tensor of class indices, got dtype "
                         f"{y.dtype} and shape {tuple(y.shape)}")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} labels but there are {n} images")
    return y.long()


def _holdout_count(val_size, n: int) -> int:
    if val_size is None:
        return 0
    if isinstance(val_size, bool) or not isinstance(val_size, numbers.Real) or val_size < 0:
        raise ValueError(f"val_size must be a count >= 0 or a fraction in (0, 1), got {val_size!r}")
    count = int(round(val_size * n)) if 0 < val_size < 1 else int(val_size)
    if count >= n:
        raise ValueError(f"val_size={val_size!r} holds out {count} of the {n} training examples; "
                         f"leave some to train on")
    return count


class TensorBatches:
    """Shuffled mini-batches of device-resident tensors; the shuffle of epoch e depends only on
    (seed, e), so a resumed run sees the same batches. Drops the last partial batch."""

    def __init__(self, x, y, batch_size: int, *, seed: int = 0, drop_last: bool = True):
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.drop_last = drop_last and x.shape[0] >= batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.x.shape[0], generator=generator).to(self.x.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]


@dataclasses.dataclass
class PreparedData:
    loader: object
    val: Optional[Tuple[torch.Tensor, torch.Tensor]]
    guard_batch: Tuple[torch.Tensor, torch.Tensor]
    num_classes: Optional[int]
    dataset: Optional[str]
    n_train: Optional[int]
    # every training image is known to be in [0, 1] (uint8 source, or checked up front), so the
    # per-op pixel checks, a host sync per batch on GPU, can be skipped in the hot loop
    pixels_checked: bool = False


def _split_tensors(x, y, count, seed):
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    hold, rest = order[:count].to(x.device), order[count:].to(x.device)
    return (x[rest], y[rest]), (x[hold], y[hold])


def _to_pair(data, device, name):
    if isinstance(data, ImageData):  # validated by ImageData itself: uint8 x, int64 labels
        return as_float_images(data.x).to(device), data.y.to(device)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x = as_float_images(data[0], f"{name}[0]")
        return x.to(device), check_labels(data[1], x.shape[0], f"{name}[1]").to(device)
    raise TypeError(f"{name} must be an ImageData or an (x, y) pair of tensors, got "
                    f"{type(data).__name__}")


def prepare(train_data, *, batch_size: int, val_size, val_data, device, seed: int,
            guard_size: int) -> PreparedData:
    """batch_size is checked by the caller (train)."""
    num_classes = dataset = n_train = None
    val = None
    pixels_checked = False
    if isinstance(train_data, ImageData):
        n = len(train_data)
        if n == 0:
            raise ValueError("train_data is empty")
        num_classes, dataset = train_data.num_classes, train_data.name
        count = _holdout_count(val_size, n)
        rest = train_data
        if count and val_data is None:
            rest, holdout = train_data.split(count, seed=seed)
            val = _to_pair(holdout, device, "validation split")
        loader = DeviceLoader(rest, batch_size, train=True, device=device, seed=seed)
        guard_batch = (as_float_images(rest.x[:guard_size]).to(device), rest.y[:guard_size].to(device))
        n_train = len(rest)
        pixels_checked = True  # ImageData holds uint8 images
    elif isinstance(train_data, (tuple, list)) and len(train_data) == 2 and \
            isinstance(train_data[0], torch.Tensor):
        x, y = _to_pair(train_data, device, "train_data")
        if x.shape[0] == 0:
            raise ValueError("train_data is empty (0 examples)")
        if x.dim() < 2:
            raise ValueError(f"train_data[0] must be a batch of images (N, C, H, W), got shape "
                             f"{tuple(x.shape)}")
        check_pixels("train_data[0]", x)
        count = _holdout_count(val_size, x.shape[0])
        if count and val_data is None:
            (x, y), val = _split_tensors(x, y, count, seed)
        loader = TensorBatches(x, y, batch_size, seed=seed)
        guard_batch = (x[:guard_size], y[:guard_size])
        n_train = x.shape[0]
        pixels_checked = True
    elif hasattr(train_data, "__iter__"):
        loader = train_data
        if isinstance(train_data, DeviceLoader):
            x, y = train_data.images[:guard_size], train_data.labels[:guard_size]
            pixels_checked = train_data.images.dtype == torch.uint8
        else:
            try:
                first = next(iter(train_data))
            except StopIteration:
                raise ValueError("train_data yields no batches (empty data)") from None
            x, y = first[0][:guard_size], first[1][:guard_size]
        if x.shape[0] == 0:
            raise ValueError("train_data is empty")
        guard_batch = (as_float_images(x).to(device),
                       check_labels(y, x.shape[0], "labels of the first batch").to(device))
        dataset = getattr(train_data, "name", None)
        num_classes = getattr(train_data, "num_classes", None)
        n_train = getattr(train_data, "dataset_size", None)
    else:
        raise TypeError("train_data must be a fastadv.data.ImageData, a DeviceLoader, a torch "
                        f"DataLoader or an (x, y) pair of tensors, got {type(train_data).__name__}")
    if val_data is not None:
        val = _to_pair(val_data, device, "val_data")
    if val is not None and val[0].shape[0] == 0:
        val = None
    return PreparedData(loader, val, guard_batch, num_classes, dataset, n_train, pixels_checked)


def batch_to_device(batch, device):
    x, y = batch[0], batch[1]
    x = as_float_images(x)
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True).long()
